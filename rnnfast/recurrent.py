"""Recurrent layers with PyTorch's parameters, shapes and semantics: RNN (tanh/relu), LSTM and GRU.

Stacking, directions and dropout between layers are arranged here; every time step runs in C++
(``sequence_forward`` / ``sequence_backward``), one call per layer and direction.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks
from ._native import core
from .module import Module

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


class _Recurrent(Module):
    _cell: str

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        dtype="float32",
        seed=None,
    ):
        super().__init__()
        self.input_size = _checks.positive_int(input_size, "input_size")
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.num_layers = _checks.positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = _checks.real(dropout, "dropout", 0.0, 1.0, high_open=True)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        dtype = _checks.float_dtype(dtype)
        self._rng = _checks.rng(seed)
        G, H = _GATES[self._cell], self.hidden_size
        layer_inputs = [self.input_size] + [H * self.num_directions] * (self.num_layers - 1)
        per_direction = [G * H * (n_in + H + (2 if self.bias else 0)) for n_in in layer_inputs]
        _checks.check_parameter_memory(
            sum(per_direction) * self.num_directions,
            G * H * max(max(layer_inputs), H),
            dtype,
            f"input_size={self.input_size}, hidden_size={H}, "
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}",
        )
        bound = 1.0 / math.sqrt(H)
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes():
                shapes = [
                    (f"weight_ih_l{layer}{suffix}", (G * H, layer_input)),
                    (f"weight_hh_l{layer}{suffix}", (G * H, H)),
                ]
                if self.bias:
                    shapes += [(f"bias_ih_l{layer}{suffix}", (G * H,)), (f"bias_hh_l{layer}{suffix}", (G * H,))]
                for name, shape in shapes:
                    self._add_param(name, self._rng.uniform(-bound, bound, size=shape).astype(dtype))
        self._cache = None
        self._spare_workspaces = []

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "dtype": self.dtype.name,
        }

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def __repr__(self) -> str:
        extra = f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"

    # ----- state handling -----------------------------------------------------------------------------------
    def _state_shape(self, B: int) -> tuple:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _state_parts(self, state, B: int, name: str) -> list:
        """The state as a list of arrays (h) or (h, c), each (L*D, B, H); None means zeros."""
        shape = self._state_shape(B)
        n_parts = 2 if self._cell == "lstm" else 1
        if state is None:
            return [np.zeros(shape, self.dtype) for _ in range(n_parts)]
        if n_parts == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError(f"{name}: got {type(state).__name__}, expected a tuple (h, c) for LSTM")
            parts, names = list(state), [f"{name}[0] (h)", f"{name}[1] (c)"]
        else:
            if isinstance(state, (tuple, list)) and len(state) == 1:
                state = state[0]
            parts, names = [state], [name]
        out = []
        for part, part_name in zip(parts, names):
            arr = _checks.as_float_array(part, part_name, self.dtype)
            if arr.shape != shape:
                raise ValueError(f"{part_name}: got shape {arr.shape}, expected {shape} (num_layers*directions, B, H)")
            _checks.check_finite(arr, part_name)
            out.append(arr)
        return out

    def _pack_state(self, parts):
        return (parts[0], parts[1]) if self._cell == "lstm" else parts[0]

    # ----- forward / backward -------------------------------------------------------------------------------
    def _input(self, x) -> np.ndarray:
        x = _checks.as_float_array(x, "x", self.dtype)
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(
                f"x: got shape {x.shape}, expected {layout} with input_size={self.input_size} and non-empty T and B"
            )
        _checks.check_finite(x, "x")
        if self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        return x

    def _lengths(self, lengths, T: int, B: int):
        if lengths is None:
            return None
        arr = _checks.as_int_array(lengths, "lengths", ndim=1)
        if arr.shape != (B,):
            raise ValueError(f"lengths: got shape {arr.shape}, expected ({B},), one length per sequence")
        _checks.check_range(arr, "lengths", 1, T)
        return None if (arr == T).all() else arr

    def forward(self, x, state=None, lengths=None):
        """Run the whole sequence. Returns ``(y, final_state)``; see the package README for shapes."""
        x = self._input(x)
        T, B, _ = x.shape
        lengths = self._lengths(lengths, T, B)
        h0, *rest = self._state_parts(state, B, "state")
        c0 = rest[0] if rest else None
        training = self.training
        H, D = self.hidden_size, self.num_directions
        params = self.named_parameters()
        hT = np.empty_like(h0)
        cT = np.empty_like(c0) if c0 is not None else None
        layer_cache = []
        self._retire_cache()
        spares, self._spare_workspaces = self._spare_workspaces, []
        # Spares of another size are let go before this call allocates, so two sets never coexist.
        if not training or any(w.size != core.workspace_size(cell=self._cell, T=T, B=B, H=H) for w in spares):
            spares = []
        inp = x
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and training and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(inp.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                inp = inp * mask
            y = np.empty((T, B, D * H), dtype=self.dtype)
            workspaces = []
            for d, suffix in enumerate(self._suffixes()):
                idx = layer * D + d
                w = self._weights(params, layer, suffix)
                scales = w[4:] if self._int8 else (None, None)
                h, c, ws = core.sequence_forward(
                    cell=self._cell,
                    x=inp,
                    h0=h0[idx],
                    c0=None if c0 is None else c0[idx],
                    W_ih=w[0],
                    W_hh=w[1],
                    b_ih=w[2],
                    b_hh=w[3],
                    lengths=lengths,
                    reverse=d == 1,
                    training=training,
                    y=y,
                    column=d * H,
                    spare_workspace=spares[idx] if idx < len(spares) else None,
                    W_ih_scale=scales[0],
                    W_hh_scale=scales[1],
                )
                hT[idx] = h
                if cT is not None:
                    cT[idx] = c
                workspaces.append(ws)
            layer_cache.append((inp, mask, workspaces))
            inp = y
        self._cache = (layer_cache, lengths, T, B) if training else None
        out = np.ascontiguousarray(inp.transpose(1, 0, 2)) if self.batch_first else inp
        return out, self._pack_state([hT] if cT is None else [hT, cT])

    __call__ = forward

    def _retire_cache(self) -> None:
        """Drop the cached forward (backward has used it, or a new forward replaces it) but keep its workspaces
        for the next training forward: fresh memory of that size costs the kernel a page fault per page."""
        if self._cache is not None:
            self._spare_workspaces = [ws for _, _, workspaces in self._cache[0] for ws in workspaces]
            self._cache = None

    def _weights(self, params, layer: int, suffix: str):
        """(W_ih, W_hh, b_ih, b_hh) of one layer direction, and with int8 weights also (W_ih_scale, W_hh_scale)."""
        key = f"l{layer}{suffix}"
        biases = (params.get(f"bias_ih_{key}"), params.get(f"bias_hh_{key}"))
        if self._int8:
            (W_ih, s_ih), (W_hh, s_hh) = self._int8[f"weight_ih_{key}"], self._int8[f"weight_hh_{key}"]
            return (W_ih, W_hh, *biases, s_ih, s_hh)
        return (params[f"weight_ih_{key}"], params[f"weight_hh_{key}"], *biases)

    def _matrices(self) -> dict[str, np.ndarray]:
        return {name: value for name, value in self._params.items() if name.startswith("weight_")}

    def backward(self, dy, dstate=None):
        """Gradients of the most recent training-mode forward. Returns ``(dx, dstate0)``; parameter gradients
        accumulate into ``grads``."""
        self._refuse_if_quantized("backward")
        if self._cache is None:
            raise RuntimeError(
                "backward: no training-mode forward to differentiate (call forward in train() mode "
                "first; each forward supports one backward)"
            )
        layer_cache, lengths, T, B = self._cache
        H, D = self.hidden_size, self.num_directions
        dy = _checks.as_float_array(dy, "dy", self.dtype)
        expected = (B, T, D * H) if self.batch_first else (T, B, D * H)
        if dy.shape != expected:
            raise ValueError(f"dy: got shape {dy.shape}, expected {expected} (the shape of y)")
        _checks.check_finite(dy, "dy")
        if self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        dparts = self._state_parts(dstate, B, "dstate")
        dh0 = np.empty_like(dparts[0])
        dc0 = np.empty_like(dparts[1]) if len(dparts) == 2 else None
        params, grads = self.named_parameters(), self.grads
        self._retire_cache()
        for layer in reversed(range(self.num_layers)):
            inp, mask, workspaces = layer_cache[layer]
            dx = np.empty_like(inp)
            for d, suffix in enumerate(self._suffixes()):
                idx = layer * D + d
                w = self._weights(params, layer, suffix)
                g = self._weights(grads, layer, suffix)
                dh, dc = core.sequence_backward(
                    cell=self._cell,
                    x=inp,
                    workspace=workspaces[d],
                    W_ih=w[0],
                    W_hh=w[1],
                    b_ih=w[2],
                    b_hh=w[3],
                    lengths=lengths,
                    reverse=d == 1,
                    dy=dy,
                    column=d * H,
                    dhT=dparts[0][idx],
                    dcT=dparts[1][idx] if dc0 is not None else None,
                    dx=dx,
                    accumulate_dx=d == 1,
                    dW_ih=g[0],
                    dW_hh=g[1],
                    db_ih=g[2],
                    db_hh=g[3],
                )
                dh0[idx] = dh
                if dc0 is not None:
                    dc0[idx] = dc
            dy = dx * mask if mask is not None else dx
        if self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        return dy, self._pack_state([dh0] if dc0 is None else [dh0, dc0])


class RNN(_Recurrent):
    """Elman RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        dtype="float32",
        seed=None,
    ):
        self.nonlinearity = _checks.choice(nonlinearity, "nonlinearity", ("tanh", "relu"))
        self._cell = "rnn_" + nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, seed)

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTM(_Recurrent):
    """LSTM with PyTorch's gate order (i, f, g, o)."""

    _cell = "lstm"


class GRU(_Recurrent):
    """GRU with PyTorch's gate order (r, z, n); the reset gate multiplies W_hn h + b_hn."""

    _cell = "gru"
