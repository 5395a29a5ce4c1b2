"""Models built from the layers, and the fused softmax cross-entropy they train with."""

from __future__ import annotations

import numpy as np

from . import _checks
from ._native import core
from .layers import Dropout, Embedding, Linear
from .module import Module
from .recurrent import _GATES, GRU, LSTM, RNN
from .train import Trainable

CELLS = ("lstm", "gru", "rnn", "rnn_relu")


def make_recurrent(
    cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool, dtype, seed
) -> Module:
    _checks.choice(cell, "cell", CELLS)
    kwargs = dict(num_layers=num_layers, dropout=dropout, bidirectional=bidirectional, dtype=dtype, seed=seed)
    if cell == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if cell == "gru":
        return GRU(input_size, hidden_size, **kwargs)
    return RNN(input_size, hidden_size, nonlinearity="relu" if cell == "rnn_relu" else "tanh", **kwargs)


def cross_entropy(logits, targets, ignore_index: int = -100, with_grad: bool = False):
    """Mean softmax cross-entropy (nats) over the rows whose target is not ``ignore_index``.

    logits (..., V) finite numbers, targets (...) integer ids. Returns ``(loss, count, correct)``, and with
    ``with_grad`` also the gradient of the mean loss with respect to the logits (same shape as logits).
    """
    raw = _checks._to_numpy(logits, "logits")
    # float64 (or wider, or integer) logits keep float64 precision; everything narrower is computed in float32.
    wide = raw.dtype.kind in "fiu" and np.result_type(raw.dtype, np.float32) != np.float32
    logits = _checks.as_float_array(raw, "logits", np.float64 if wide else np.float32)
    if logits.ndim < 1 or logits.size == 0:
        raise ValueError(f"logits: got shape {logits.shape}, expected (..., V) and non-empty")
    _checks.check_finite(logits, "logits")
    targets = _checks.as_int_array(targets, "targets")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets: got shape {targets.shape}, expected {logits.shape[:-1]} (logits without V)")
    ignore_index = _checks.integer(ignore_index, "ignore_index", -(2**63), 2**63 - 1)
    return _softmax_cross_entropy(logits, targets, with_grad, ignore_index)


def _softmax_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, with_grad: bool = False, ignore_index: int = -100, in_place: bool = False
):
    """``cross_entropy`` of checked arrays. A model's own logits come here unchecked: should training diverge,
    their NaN must reach the training loop as a non-finite loss, which it knows how to report or skip. With
    ``in_place`` the gradient overwrites the logits (a model's own buffer: one (T*B, V) array instead of two)."""
    V = logits.shape[-1]
    flat_logits, flat_targets = logits.reshape(-1, V), targets.reshape(-1)
    count = int(np.count_nonzero(flat_targets != ignore_index))
    grad = (flat_logits if in_place else np.empty_like(flat_logits)) if with_grad else None
    total, count, correct = core.softmax_cross_entropy(
        logits=flat_logits,
        targets=flat_targets,
        ignore_index=ignore_index,
        dlogits=grad,
        grad_scale=1.0 / max(count, 1),
    )
    loss = total / count if count else float("nan")
    if with_grad:
        return loss, count, correct, grad.reshape(logits.shape)
    return loss, count, correct


class LanguageModel(Module, Trainable):
    """Embedding -> recurrent stack -> linear head over the vocabulary.

    ``fit(x)`` and ``evaluate(x)`` take a 1-d array of token ids (e.g. ``rf.text.CharTokenizer``'s ``encode``);
    their options ``seq_len`` (steps of truncated back-propagation, default 100) and, for ``fit``, ``tokenizer``
    (saved with the checkpoints of ``out=``). ``validation_data`` is another array of ids.

    Dropout, when set, follows PyTorch's word_language_model and Zaremba et al. (2014): on the embeddings, between
    recurrent layers and on the last layer's output. ``tie_weights`` shares the embedding matrix with the output
    layer (requires ``embed_dim == hidden_size``). ``init_scale`` re-initialises every parameter U(-s, s).
    """

    TASK = "lm"

    def __init__(
        self,
        vocab_size,
        embed_dim,
        hidden_size,
        num_layers=1,
        cell="lstm",
        dropout=0.0,
        tie_weights=False,
        seed=None,
        init_scale=None,
        dtype="float32",
    ):
        super().__init__()
        self.vocab_size = _checks.positive_int(vocab_size, "vocab_size")
        self.embed_dim = _checks.positive_int(embed_dim, "embed_dim")
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.num_layers = _checks.positive_int(num_layers, "num_layers")
        self.cell = _checks.choice(cell, "cell", CELLS)
        self.dropout_p = _checks.real(dropout, "dropout", 0.0, 1.0, high_open=True)
        self.tie_weights = bool(tie_weights)
        if self.tie_weights and self.embed_dim != self.hidden_size:
            raise ValueError(
                f"tie_weights: requires embed_dim == hidden_size, got {self.embed_dim} and {self.hidden_size}"
            )
        self.init_scale = None if init_scale is None else _checks.real(init_scale, "init_scale", 0.0, low_open=True)
        rng = _checks.rng(seed)
        V, E, H, L = self.vocab_size, self.embed_dim, self.hidden_size, self.num_layers
        G = _GATES["rnn_tanh" if cell == "rnn" else cell]
        recurrent = G * H * (E + H + 2) + (L - 1) * G * H * (2 * H + 2)
        head = V * (1 if self.tie_weights else H + 1)
        # Checked as a whole first, so that a huge vocabulary is refused naming vocab_size, before any layer exists.
        _checks.check_parameter_memory(
            V * E + recurrent + head,
            max(V * E, V * H, G * H * max(E, H)),
            _checks.float_dtype(dtype),
            f"vocab_size={V}, embed_dim={E}, hidden_size={H}, num_layers={L}",
        )
        child_seed = lambda: int(rng.integers(2**63))  # noqa: E731 - independent streams per layer
        self.embedding = self._add_child("embedding", Embedding(vocab_size, embed_dim, dtype, child_seed()))
        self.rnn = self._add_child(
            "rnn", make_recurrent(cell, embed_dim, hidden_size, num_layers, dropout, False, dtype, child_seed())
        )
        self.drop_in = self._add_child("drop_in", Dropout(dropout, child_seed()))
        self.drop_out = self._add_child("drop_out", Dropout(dropout, child_seed()))
        tied = (self.embedding, "weight") if self.tie_weights else None
        self.head = self._add_child("head", Linear(hidden_size, vocab_size, True, dtype, child_seed(), tied_to=tied))
        if self.init_scale is not None:
            for value in self.named_parameters().values():
                value[...] = rng.uniform(-self.init_scale, self.init_scale, value.shape)
        self._seed_source = rng
        self._dlogits = None
        self.train()

    def config(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dropout": self.dropout_p,
            "tie_weights": self.tie_weights,
            "init_scale": self.init_scale,
            "dtype": self.dtype.name,
        }

    def _tokens(self, ids, name: str) -> np.ndarray:
        ids = self.embedding.check_ids(ids, name)
        if ids.ndim != 2:
            raise ValueError(f"{name}: got shape {ids.shape}, expected (T, B) token ids")
        return ids

    def forward(self, inputs, state=None):
        """Logits (T, B, V) for token ids (T, B), and the final recurrent state. A pending ``backward()`` of an
        earlier ``loss`` is dropped: the layers now hold this call's values."""
        inputs = self._tokens(inputs, "inputs")
        self.rnn._state_parts(state, inputs.shape[1], "state")
        self._dlogits = None
        return self._run(inputs, state)

    __call__ = forward

    def _run(self, inputs: np.ndarray, state):
        x = self.drop_in(self.embedding(inputs))
        y, state = self.rnn.forward(x, state)
        return self.head(self.drop_out(y)), state

    def loss(self, inputs, targets, state=None):
        """Mean cross-entropy (nats/token) of predicting ``targets`` (T, B) from ``inputs`` (T, B); returns
        ``(loss, final_state)``. In training mode the gradient is kept for ``backward()``. Arguments are checked
        before any layer runs, so a refused call leaves a pending ``backward()`` as it was."""
        inputs = self._tokens(inputs, "inputs")
        targets = self._tokens(targets, "targets")
        if targets.shape != inputs.shape:
            raise ValueError(f"targets: got shape {targets.shape}, expected {inputs.shape} like inputs")
        self.rnn._state_parts(state, inputs.shape[1], "state")
        self._dlogits = None
        logits, state = self._run(inputs, state)
        if self.training:
            loss, _, self.last_correct, self._dlogits = _softmax_cross_entropy(
                logits, targets, with_grad=True, in_place=True
            )
        else:
            loss, _, self.last_correct = _softmax_cross_entropy(logits, targets)
        return loss, state

    def backward(self) -> None:
        """Accumulate the gradients of the last training-mode ``loss`` into ``grads``."""
        self._refuse_if_quantized("backward")
        if self._dlogits is None:
            raise RuntimeError(
                "backward: call loss() in training mode first (each loss supports one backward, and "
                "a forward() or loss() in between replaces it)"
            )
        dlogits, self._dlogits = self._dlogits, None
        dy = self.drop_out.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(dy)
        self.embedding.backward(self.drop_in.backward(dx))

    def initial_state(self, batch_size: int = 1):
        shape = (self.num_layers, _checks.positive_int(batch_size, "batch_size"), self.hidden_size)
        zeros = lambda: np.zeros(shape, self.dtype)  # noqa: E731
        return (zeros(), zeros()) if self.cell == "lstm" else zeros()

    def generate(
        self,
        prompt,
        max_new_tokens,
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
        state=None,
        weight_dtype=None,
    ):
        """Feed ``prompt`` (at least one id), then sample ``max_new_tokens`` ids; returns them as an int64 array.

        temperature 0 is greedy; top_k keeps the k most likely tokens; top_p keeps the smallest set whose
        probability reaches p. The whole loop runs in C++; the same seed gives the same tokens.

        weight_dtype "bfloat16" (float32 models) multiplies by the recurrent layers' and the output layer's weight
        matrices rounded to bfloat16, with float32 activations and sums: each token then reads half the bytes,
        which is what limits generation speed, at the cost of about three significant digits in those weights.
        "int8" multiplies by them quantized to int8 (rnnfast.quantize), a quarter of the bytes; a float32 model
        quantizes them at every call, so for repeated calls generate from ``model.quantize("int8")``. The
        default, None, is the model's own weights: int8 for a quantized model, else float32.
        """
        prompt = _checks.as_int_array(prompt, "prompt").reshape(-1)
        if prompt.size == 0:
            raise ValueError("prompt: got 0 tokens, expected at least 1")
        _checks.check_range(prompt, "prompt", 0, self.vocab_size - 1)
        max_new_tokens = _checks.positive_int(max_new_tokens, "max_new_tokens", minimum=0)
        temperature = _checks.real(temperature, "temperature", 0.0)
        # Any k of at least the vocabulary keeps every token, so larger values are passed on as the vocabulary size.
        top_k = 0 if top_k is None else min(_checks.integer(top_k, "top_k", 1, 2**63 - 1), self.vocab_size)
        top_p = 1.0 if top_p is None else _checks.real(top_p, "top_p", 0.0, 1.0, low_open=True)
        seed = int(self._seed_source.integers(2**63)) if seed is None else _checks.integer(seed, "seed", 0, 2**64 - 1)
        if weight_dtype is None:
            weight_dtype = self.weight_dtype
        weight_dtype = _checks.choice(weight_dtype, "weight_dtype", ("float32", "bfloat16", "int8"))
        if weight_dtype != "float32" and self.dtype != np.float32:
            raise ValueError(f"weight_dtype: got {weight_dtype!r} for a {self.dtype.name} model, expected float32")
        if self.weight_dtype != "float32" and weight_dtype != self.weight_dtype:
            raise ValueError(
                f"weight_dtype: got {weight_dtype!r} for a model quantized to {self.weight_dtype}, "
                f"expected {self.weight_dtype!r} or None"
            )
        model = self.quantize(weight_dtype) if weight_dtype == "int8" and self.weight_dtype == "float32" else self
        parts = self.rnn._state_parts(state, 1, "state")
        # Copies: the kernel updates its state in place and the caller's arrays must stay as they were.
        h = np.array(parts[0][:, 0, :], order="C")
        c = np.array(parts[1][:, 0, :], order="C") if len(parts) == 2 else None
        params = model.rnn.named_parameters()
        layers = [model.rnn._weights(params, layer, "") for layer in range(self.num_layers)]
        head_W, head_scale = (
            model.head._int8["weight"] if model.head._int8 else (model.head._weight_and_grad()[0], None)
        )
        return core.generate(
            cell=model.rnn._cell,
            embedding=model.embedding._params["weight"],
            layers=layers,
            head_W=head_W,
            head_scale=head_scale,
            head_b=model.head._params.get("bias"),
            prompt=prompt,
            steps=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            h=h,
            c=c,
            weight_dtype=weight_dtype,
        )
