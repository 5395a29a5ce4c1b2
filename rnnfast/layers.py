"""Non-recurrent building blocks with the same protocol as the recurrent layers: Embedding, Linear, Dropout."""

from __future__ import annotations

import math

import numpy as np

from . import _checks
from ._native import core
from .module import Module


class Embedding(Module):
    """Lookup table (num_embeddings, embedding_dim), initialised N(0, 1) as in PyTorch."""

    def __init__(self, num_embeddings, embedding_dim, dtype="float32", seed=None):
        super().__init__()
        self.num_embeddings = _checks.positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _checks.positive_int(embedding_dim, "embedding_dim")
        dtype = _checks.float_dtype(dtype)
        rng = _checks.rng(seed)
        count = self.num_embeddings * self.embedding_dim
        _checks.check_parameter_memory(
            count, count, dtype, f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"
        )
        self._add_param("weight", rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype))
        self._ids = None

    def config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim, "dtype": self.dtype.name}

    def check_ids(self, ids, name: str = "ids") -> np.ndarray:
        ids = _checks.as_int_array(ids, name)
        if ids.size == 0:
            raise ValueError(f"{name}: got an empty array, expected at least one token id")
        _checks.check_range(ids, name, 0, self.num_embeddings - 1)
        return ids

    def forward(self, ids):
        ids = self.check_ids(ids)
        self._ids = ids if self.training else None
        return self._params["weight"][ids]

    __call__ = forward

    def backward(self, dy):
        if self._ids is None:
            raise RuntimeError("backward: no training-mode forward to differentiate")
        ids = self._ids
        dy = _checks.as_float_array(dy, "dy", self.dtype)
        if dy.shape != ids.shape + (self.embedding_dim,):
            raise ValueError(f"dy: got shape {dy.shape}, expected {ids.shape + (self.embedding_dim,)}")
        self._ids = None  # only now: a refused dy leaves the forward to differentiate
        core.embedding_backward(ids=ids, dy=dy, dW=self._grads["weight"])


class Linear(Module):
    """y = x W^T + b over the last axis, initialised U(-1/sqrt(in), 1/sqrt(in)) as in PyTorch.

    With ``tied_to=(module, name)`` the weight is that module's parameter (weight tying of a language model's
    embedding and output layer); its gradient accumulates there.
    """

    def __init__(self, in_features, out_features, bias=True, dtype="float32", seed=None, tied_to=None):
        super().__init__()
        self.in_features = _checks.positive_int(in_features, "in_features")
        self.out_features = _checks.positive_int(out_features, "out_features")
        self.has_bias = bool(bias)
        dtype = _checks.float_dtype(dtype)
        rng = _checks.rng(seed)
        own_weight = self.out_features * self.in_features if tied_to is None else 0
        count = own_weight + (self.out_features if self.has_bias else 0)
        _checks.check_parameter_memory(
            count,
            max(own_weight, self.out_features),
            dtype,
            f"in_features={self.in_features}, out_features={self.out_features}",
        )
        bound = 1.0 / math.sqrt(self.in_features)
        self._tied = tied_to
        if tied_to is None:
            self._add_param("weight", rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dtype))
        else:
            module, name = tied_to
            shape = module._params[name].shape
            if shape != (self.out_features, self.in_features):
                raise ValueError(f"tied_to: weight has shape {shape}, expected {(self.out_features, self.in_features)}")
        if self.has_bias:
            self._add_param("bias", rng.uniform(-bound, bound, self.out_features).astype(dtype))
        self._x = None

    def config(self) -> dict:
        if self._tied is not None:
            raise NotImplementedError("a tied Linear is saved as part of the model that owns the tied weight")
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.has_bias,
            "dtype": self.dtype.name,
        }

    def _weight_and_grad(self):
        module, name = self._tied if self._tied is not None else (self, "weight")
        return module._params[name], module._grads[name]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self._int8 else self._weight_and_grad()[0].dtype

    def _matrices(self) -> dict[str, np.ndarray]:
        return {"weight": self._weight_and_grad()[0]}

    def forward(self, x):
        x = _checks.as_float_array(x, "x", self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features or x.size == 0:
            raise ValueError(f"x: got shape {x.shape}, expected (..., {self.in_features}) and non-empty")
        _checks.check_finite(x, "x")
        flat = x.reshape(-1, self.in_features)
        y = np.empty((flat.shape[0], self.out_features), dtype=self.dtype)
        if self._int8:
            W, scale = self._int8["weight"]
            core.linear_forward_int8(x=flat, W=W, W_scale=scale, b=self._params.get("bias"), y=y)
        else:
            core.linear_forward(x=flat, W=self._weight_and_grad()[0], b=self._params.get("bias"), y=y)
        self._x = flat if self.training else None
        return y.reshape(x.shape[:-1] + (self.out_features,))

    __call__ = forward

    def backward(self, dy, need_input_grad: bool = True):
        self._refuse_if_quantized("backward")
        if self._x is None:
            raise RuntimeError("backward: no training-mode forward to differentiate")
        x = self._x
        dy = _checks.as_float_array(dy, "dy", self.dtype)
        if dy.size != x.shape[0] * self.out_features or dy.shape[-1:] != (self.out_features,):
            raise ValueError(f"dy: got shape {dy.shape}, expected (..., {self.out_features}) matching the input")
        self._x = None  # only now: a refused dy leaves the forward to differentiate
        weight, weight_grad = self._weight_and_grad()
        dx = np.empty_like(x) if need_input_grad else None
        core.linear_backward(
            dy=dy.reshape(-1, self.out_features), x=x, W=weight, dx=dx, dW=weight_grad, db=self._grads.get("bias")
        )
        return None if dx is None else dx.reshape(dy.shape[:-1] + (self.in_features,))


class Dropout(Module):
    """Inverted dropout: zeroes each value with probability p in training and scales the rest by 1/(1-p)."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = _checks.real(p, "p", 0.0, 1.0, high_open=True)
        self._rng = _checks.rng(seed)
        self._mask = None

    def config(self) -> dict:
        return {"p": self.p}

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = 1.0 - self.p
        self._mask = (self._rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self._mask

    __call__ = forward

    def backward(self, dy):
        dy = np.asarray(dy)
        if self._mask is None:
            return dy
        mask, self._mask = self._mask, None
        if dy.shape != mask.shape:
            raise ValueError(f"dy: got shape {dy.shape}, expected {mask.shape}")
        return dy * mask
