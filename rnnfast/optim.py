"""Optimizers (SGD, Adam, AdamW), learning-rate schedules and gradient clipping.

Each optimizer updates a model's whole parameter arena with one C++ call, using torch.optim's update formulas, so
the same gradients produce the same parameters. ``state_dict()``/``load_state_dict()`` round-trip through
checkpoints (arrays plus JSON scalars).
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks
from ._native import core
from .module import Module, Parameters


def _arena(params) -> Parameters:
    if isinstance(params, Module):
        return params.parameters()
    if isinstance(params, Parameters):
        return params
    raise TypeError(f"params: got {type(params).__name__}, expected a Module or model.parameters()")


class Optimizer:
    def __init__(self, params, lr):
        self.params = _arena(params)
        self.lr = _checks.real(lr, "lr", 0.0)
        self.step_count = 0

    def zero_grad(self) -> None:
        self.params.grad.fill(0)

    def _check_finite_grad(self) -> None:
        total = core.sum_of_squares(self.params.grad)
        if not math.isfinite(total):
            raise FloatingPointError("step: gradients contain NaN or Inf; the update was not applied")

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "lr": self.lr, "step": self.step_count, **self._hyper(),
                **{name: buf.copy() for name, buf in self._buffers().items()}}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state: got optimizer state of {got!r}, expected {type(self).__name__!r}")
        for key in self._hyper():
            setattr(self, key, state[key])
        self._allocate_buffers()
        for name, buf in self._buffers().items():
            value = np.asarray(state.get(name))
            if value.shape != buf.shape:
                raise ValueError(f"state[{name!r}]: got shape {value.shape}, expected {buf.shape}")
            buf[...] = value
        self.lr = float(state["lr"])
        self.step_count = int(state["step"])

    def _allocate_buffers(self) -> None:
        """(Re)create state buffers to match the hyper-parameters."""

    def _hyper(self) -> dict:
        return {}

    def _buffers(self) -> dict:
        return {}


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, dampening=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum = _checks.real(momentum, "momentum", 0.0)
        self.weight_decay = _checks.real(weight_decay, "weight_decay", 0.0)
        self.dampening = _checks.real(dampening, "dampening", 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(f"nesterov: got True with momentum={self.momentum} and dampening={self.dampening}, "
                             "expected momentum > 0 and dampening = 0")
        self.momentum_buffer = None
        self._allocate_buffers()

    def _allocate_buffers(self) -> None:
        if self.momentum and self.momentum_buffer is None:
            self.momentum_buffer = np.zeros_like(self.params.data)
        elif not self.momentum:
            self.momentum_buffer = None

    def _hyper(self) -> dict:
        return {"momentum": self.momentum, "weight_decay": self.weight_decay, "dampening": self.dampening,
                "nesterov": self.nesterov}

    def _buffers(self) -> dict:
        return {"momentum_buffer": self.momentum_buffer} if self.momentum_buffer is not None else {}

    def step(self) -> None:
        self._check_finite_grad()
        self.step_count += 1
        core.sgd_step(self.params.data, self.params.grad, self.momentum_buffer, self.lr, self.momentum,
                      self.weight_decay, self.dampening, self.nesterov, self.step_count == 1)


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: got {betas!r}, expected a pair (beta1, beta2)")
        self.betas = (_checks.real(betas[0], "betas[0]", 0.0, 1.0, high_open=True),
                      _checks.real(betas[1], "betas[1]", 0.0, 1.0, high_open=True))
        self.eps = _checks.real(eps, "eps", 0.0)
        self.weight_decay = _checks.real(weight_decay, "weight_decay", 0.0)
        self.exp_avg = np.zeros_like(self.params.data)
        self.exp_avg_sq = np.zeros_like(self.params.data)

    def _hyper(self) -> dict:
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.betas = tuple(self.betas)

    def _buffers(self) -> dict:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def step(self) -> None:
        self._check_finite_grad()
        self.step_count += 1
        core.adam_step(self.params.data, self.params.grad, self.exp_avg, self.exp_avg_sq, self.lr, self.betas[0],
                       self.betas[1], self.eps, self.weight_decay, self._decoupled, self.step_count)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's default weight_decay=0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


# ----- learning-rate schedules -------------------------------------------------------------------------------
class _Schedule:
    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: got {type(optimizer).__name__}, expected an rnnfast optimizer")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class StepDecay(_Schedule):
    """Keep base_lr for the first ``start`` epochs, then multiply by ``gamma`` at epoch ``start`` and every
    ``step_size`` epochs after: Zaremba et al.'s "halve after epoch 4" is StepDecay(opt, 0.5, 1, start=4), and
    PyTorch's StepLR(step_size=s) is the default start=step_size."""

    def __init__(self, optimizer, gamma, step_size=1, start=None):
        super().__init__(optimizer)
        self.gamma = _checks.real(gamma, "gamma", 0.0, 1.0, low_open=True)
        self.step_size = _checks.positive_int(step_size, "step_size")
        self.start = self.step_size if start is None else _checks.positive_int(start, "start", minimum=0)

    def lr_at(self, epoch: int) -> float:
        decays = 0 if epoch < self.start else (epoch - self.start) // self.step_size + 1
        return self.base_lr * self.gamma ** decays

    def step(self, epoch: int) -> float:
        """Set the learning rate for ``epoch`` (counted from 0) and return it."""
        self.optimizer.lr = self.lr_at(epoch)
        return self.optimizer.lr


class Cosine(_Schedule):
    """Cosine annealing from base_lr to ``min_lr`` over ``total_steps`` steps (PyTorch's CosineAnnealingLR)."""

    def __init__(self, optimizer, total_steps, min_lr=0.0):
        super().__init__(optimizer)
        self.total_steps = _checks.positive_int(total_steps, "total_steps")
        self.min_lr = _checks.real(min_lr, "min_lr", 0.0)

    def step(self, step: int) -> float:
        t = min(step, self.total_steps) / self.total_steps
        self.optimizer.lr = self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
        return self.optimizer.lr


class ReduceOnPlateau(_Schedule):
    """Multiply the learning rate by ``factor`` when the monitored loss has not improved by more than
    ``threshold`` (relative) for ``patience`` evaluations (PyTorch's ReduceLROnPlateau, mode='min')."""

    def __init__(self, optimizer, factor=0.1, patience=2, threshold=1e-4, min_lr=0.0):
        super().__init__(optimizer)
        self.factor = _checks.real(factor, "factor", 0.0, 1.0, low_open=True, high_open=True)
        self.patience = _checks.positive_int(patience, "patience", minimum=0)
        self.threshold = _checks.real(threshold, "threshold", 0.0)
        self.min_lr = _checks.real(min_lr, "min_lr", 0.0)
        self.best = math.inf
        self.bad_evals = 0

    def step(self, loss: float) -> float:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad_evals = loss, 0
        else:
            self.bad_evals += 1
            if self.bad_evals > self.patience:
                self.optimizer.lr = max(self.min_lr, self.optimizer.lr * self.factor)
                self.bad_evals = 0
        return self.optimizer.lr


# ----- clipping ----------------------------------------------------------------------------------------------
def clip_grad_norm(model, max_norm) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm before."""
    max_norm = _checks.real(max_norm, "max_norm", 0.0, low_open=True)
    grad = _arena(model).grad
    total = math.sqrt(core.sum_of_squares(grad))
    coef = max_norm / (total + 1e-6)  # PyTorch's epsilon, so both clip identically
    if coef < 1.0:
        core.scale_in_place(grad, coef)
    return total


def clip_grad_value(model, clip_value) -> None:
    """Clamp every gradient value to [-clip_value, clip_value]."""
    clip_value = _checks.real(clip_value, "clip_value", 0.0, low_open=True)
    core.clamp_in_place(_arena(model).grad, clip_value)
