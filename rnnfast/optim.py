"""Optimizers (SGD, Adam, AdamW), learning-rate schedules and gradient clipping.

Each optimizer updates a model's whole parameter arena with one C++ call, using torch.optim's update formulas, so
the same gradients produce the same parameters. ``state_dict()``/``load_state_dict()`` round-trip through
checkpoints (arrays plus JSON scalars).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

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


def _argument(key: str) -> str:
    return key


def _state_entry(key: str) -> str:
    return f"state[{key!r}]"


class Optimizer:
    def __init__(self, params, lr):
        self.params = _arena(params)
        self.lr = _checks.real(lr, "lr", 0.0)
        self.step_count = 0

    def zero_grad(self) -> None:
        self.params.grad.fill(0)

    def step(self, grad_scale: float = 1.0, grad_norm: float | None = None) -> None:
        """One update from the gradients in the arena, refused (FloatingPointError, nothing changed) when they hold
        NaN or Inf. ``grad_scale`` multiplies every gradient as the update reads it and leaves the gradients as
        they are: ``step(clip_factor(norm, max_norm))`` updates as ``clip_grad_norm(model, max_norm)`` then
        ``step()`` do, bit for bit, with one pass fewer over the gradients. ``grad_norm``, their L2 norm when the
        caller has it (``grad_norm(model)``), spares the pass that checks them when it is finite."""
        grad_scale = _checks.real(grad_scale, "grad_scale", 0.0)
        if grad_norm is None or not math.isfinite(grad_norm):
            grad_norm = math.sqrt(core.sum_of_squares(x=self.params.grad))
        if not math.isfinite(grad_norm):
            raise FloatingPointError("step: gradients contain NaN or Inf; the update was not applied")
        self.step_count += 1
        self._update(grad_scale)

    def _update(self, grad_scale: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {
            "type": type(self).__name__,
            "lr": self.lr,
            "step": self.step_count,
            **self._hyper(),
            **{name: buf.copy() for name, buf in self._buffers().items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore what ``state_dict()`` returned. Every entry is checked first (an error names it as
        ``state['key']``), so a refused state changes nothing."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state: got {type(state).__name__}, expected the dict that state_dict() returns")
        if state.get("type") != type(self).__name__:
            raise ValueError(
                f"state['type']: got optimizer state of {state.get('type')!r}, expected {type(self).__name__!r}"
            )
        expected = ["type", "lr", "step", *self._hyper()]
        missing = [key for key in expected if key not in state]
        if missing:
            raise ValueError(
                f"state[{missing[0]!r}]: missing, expected every entry of {type(self).__name__}'s "
                f"state_dict() ({', '.join(expected)} and its buffers)"
            )
        lr = _checks.real(state["lr"], "state['lr']", 0.0)
        step = _checks.integer(state["step"], "state['step']", 0)
        hyper = self._checked_hyper({key: state[key] for key in self._hyper()}, _state_entry)
        buffers = {}
        for name in self._buffer_names(hyper):
            label = _state_entry(name)
            if name not in state:
                raise ValueError(f"{label}: missing, expected a buffer of shape {self.params.data.shape}")
            value = _checks.as_float_array(state[name], label, self.params.data.dtype)
            if value.shape != self.params.data.shape:
                raise ValueError(f"{label}: got shape {value.shape}, expected {self.params.data.shape}")
            _checks.check_finite(value, label)
            buffers[name] = value
        unexpected = [key for key in state if key not in expected and key not in buffers]
        if unexpected:
            raise ValueError(
                f"state[{unexpected[0]!r}]: unexpected entry, expected only {', '.join(expected)} "
                f"and {', '.join(buffers) or 'no buffers'}"
            )
        self.lr, self.step_count = lr, step
        for key, value in hyper.items():
            setattr(self, key, value)
        self._allocate_buffers()
        for name, value in buffers.items():
            self._buffers()[name][...] = value

    def _checked_hyper(self, values: dict, label) -> dict:
        """The hyper-parameters in ``values`` checked and converted; ``label(key)`` names one in errors."""
        return {}

    def _allocate_buffers(self) -> None:
        """(Re)create state buffers to match the hyper-parameters."""

    def _buffer_names(self, hyper: dict) -> tuple:
        """The buffers that the hyper-parameters ``hyper`` need."""
        return ()

    def _hyper(self) -> dict:
        return {}

    def _buffers(self) -> dict:
        return {}


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, dampening=0.0, nesterov=False):
        super().__init__(params, lr)
        hyper = self._checked_hyper(
            {"momentum": momentum, "weight_decay": weight_decay, "dampening": dampening, "nesterov": nesterov},
            _argument,
        )
        self.momentum, self.weight_decay = hyper["momentum"], hyper["weight_decay"]
        self.dampening, self.nesterov = hyper["dampening"], hyper["nesterov"]
        self.momentum_buffer = None
        self._allocate_buffers()

    def _checked_hyper(self, values: dict, label) -> dict:
        out = {
            "momentum": _checks.real(values["momentum"], label("momentum"), 0.0),
            "weight_decay": _checks.real(values["weight_decay"], label("weight_decay"), 0.0),
            "dampening": _checks.real(values["dampening"], label("dampening"), 0.0, 1.0),
        }
        nesterov = values["nesterov"]
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(
                f"{label('nesterov')}: got {nesterov!r} ({type(nesterov).__name__}), expected True or False"
            )
        out["nesterov"] = bool(nesterov)
        if out["nesterov"] and (out["momentum"] == 0 or out["dampening"] != 0):
            raise ValueError(
                f"{label('nesterov')}: got True with momentum={out['momentum']} and dampening="
                f"{out['dampening']}, expected momentum > 0 and dampening = 0"
            )
        return out

    def _allocate_buffers(self) -> None:
        if self.momentum and self.momentum_buffer is None:
            self.momentum_buffer = np.zeros_like(self.params.data)
        elif not self.momentum:
            self.momentum_buffer = None

    def _buffer_names(self, hyper: dict) -> tuple:
        return ("momentum_buffer",) if hyper["momentum"] else ()

    def _hyper(self) -> dict:
        return {
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
        }

    def _buffers(self) -> dict:
        return {"momentum_buffer": self.momentum_buffer} if self.momentum_buffer is not None else {}

    def _update(self, grad_scale: float) -> None:
        core.sgd_step(
            params=self.params.data,
            grads=self.params.grad,
            momentum_buffer=self.momentum_buffer,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            dampening=self.dampening,
            nesterov=self.nesterov,
            first_step=self.step_count == 1,
            grad_scale=grad_scale,
        )


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        hyper = self._checked_hyper({"betas": betas, "eps": eps, "weight_decay": weight_decay}, _argument)
        self.betas, self.eps, self.weight_decay = hyper["betas"], hyper["eps"], hyper["weight_decay"]
        self.exp_avg = np.zeros_like(self.params.data)
        self.exp_avg_sq = np.zeros_like(self.params.data)

    def _checked_hyper(self, values: dict, label) -> dict:
        betas = values["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{label('betas')}: got {betas!r}, expected a pair (beta1, beta2)")
        return {
            "betas": tuple(
                _checks.real(b, f"{label('betas')}[{i}]", 0.0, 1.0, high_open=True) for i, b in enumerate(betas)
            ),
            "eps": _checks.real(values["eps"], label("eps"), 0.0),
            "weight_decay": _checks.real(values["weight_decay"], label("weight_decay"), 0.0),
        }

    def _buffer_names(self, hyper: dict) -> tuple:
        return ("exp_avg", "exp_avg_sq")

    def _hyper(self) -> dict:
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _buffers(self) -> dict:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def _update(self, grad_scale: float) -> None:
        core.adam_step(
            params=self.params.data,
            grads=self.params.grad,
            exp_avg=self.exp_avg,
            exp_avg_sq=self.exp_avg_sq,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            decoupled=self._decoupled,
            step=self.step_count,
            grad_scale=grad_scale,
        )


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
        return self.base_lr * self.gamma**decays

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
def grad_norm(model) -> float:
    """The global L2 norm of all gradients (NaN or Inf when one of them is)."""
    return math.sqrt(core.sum_of_squares(x=_arena(model).grad))


def clip_factor(norm: float, max_norm: float) -> float:
    """What clip_grad_norm multiplies gradients of global norm ``norm`` by: at most 1."""
    return min(1.0, max_norm / (norm + 1e-6))  # PyTorch's epsilon, so both clip identically


def clip_grad_norm(model, max_norm) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm before."""
    max_norm = _checks.real(max_norm, "max_norm", 0.0, low_open=True)
    total = grad_norm(model)
    factor = clip_factor(total, max_norm)
    if factor < 1.0:
        core.scale_in_place(x=_arena(model).grad, factor=factor)
    return total


def clip_grad_value(model, clip_value) -> None:
    """Clamp every gradient value to [-clip_value, clip_value]."""
    clip_value = _checks.real(clip_value, "clip_value", 0.0, low_open=True)
    core.clamp_in_place(x=_arena(model).grad, limit=clip_value)
