"""Models for sequence tasks beyond language modelling: classification, tagging (softmax or CRF output) and
forecasting, plus the CRF layer.

Every model reads time-major batches, as the recurrent layers do: token ids (T, B) looked up in an embedding
(``vocab_size=``), or real-valued features (T, B, input_size) (``input_size=``; audio frames, sensor readings).
``lengths`` (B,) gives each sequence's own length in a padded batch; padding never changes a result or a
gradient, because the recurrent layers stop each sequence at its length and everything after them (pooling, the
loss) ignores padded positions. Each model has ``loss`` (keeps the gradient in training mode), ``backward``
(accumulates into the parameter arena, so rnnfast.optim and clipping work) and ``predict`` (evaluation mode for
the call, whatever the model's mode), and ``config()`` for checkpoints.
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import _checks
from ._native import core
from .layers import Dropout, Embedding, Linear
from .models import CELLS, _softmax_cross_entropy, make_recurrent
from .module import Module
from .recurrent import LSTM
from .train import Trainable

POOLINGS = ("last", "mean", "max")
FORECAST_LOSSES = ("mse", "mae")
PADDING = -1  # tag id written at padded positions by SequenceTagger.predict
_IGNORE = -100  # target id the fused cross-entropy skips


# ----- shared pieces ----------------------------------------------------------------------------------------
def _check_lengths(lengths, T: int, B: int) -> np.ndarray:
    """Lengths as int64 (B,) in 1..T; None means every sequence fills all T steps."""
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    arr = _checks.as_int_array(lengths, "lengths", ndim=1)
    if arr.shape != (B,):
        raise ValueError(f"lengths: got shape {arr.shape}, expected ({B},), one length per sequence")
    _checks.check_range(arr, "lengths", 1, T)
    return arr


def _valid_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """(T, B) True where a step lies inside its sequence."""
    return np.arange(T)[:, None] < lengths[None, :]


def _seeds(seed):
    rng = _checks.rng(seed)
    return lambda: int(rng.integers(2**63))


@contextlib.contextmanager
def evaluation_mode(model: Module):
    """Evaluation mode for the duration of a prediction, then the mode the model had."""
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode


class _Pooling:
    """One vector per sequence from recurrent outputs y (T, B, D*H): the last step, the mean or the maximum over
    each sequence's own steps. With two directions, "last" is the forward direction's output at the sequence's
    last step next to the backward direction's output at step 0, i.e. both final states (h_n[-2], h_n[-1] in
    PyTorch)."""

    def __init__(self, mode: str, hidden_size: int, bidirectional: bool):
        self.mode = mode
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self._cache = None

    def forward(self, y: np.ndarray, lengths: np.ndarray, keep: bool) -> np.ndarray:
        T, B, _ = y.shape
        batch = np.arange(B)
        if self.mode == "last":
            pooled = y[lengths - 1, batch]
            if self.bidirectional:
                pooled[:, self.hidden_size :] = y[0, :, self.hidden_size :]
            where = None
        elif self.mode == "mean":
            mask = _valid_mask(lengths, T)[:, :, None]
            pooled = (y * mask).sum(axis=0) / lengths[:, None].astype(y.dtype)
            where = mask
        else:
            masked = np.where(_valid_mask(lengths, T)[:, :, None], y, -np.inf)
            where = masked.argmax(axis=0)[None]  # (1, B, D*H): the step each maximum came from
            pooled = np.take_along_axis(y, where, axis=0)[0]
        self._cache = (y.shape, y.dtype, lengths, where) if keep else None
        return pooled

    def backward(self, dpooled: np.ndarray) -> np.ndarray:
        shape, dtype, lengths, where = self._cache
        self._cache = None
        dy = np.zeros(shape, dtype=dtype)
        batch = np.arange(shape[1])
        if self.mode == "last":
            dy[lengths - 1, batch] = dpooled
            if self.bidirectional:
                dy[lengths - 1, batch, self.hidden_size :] = 0
                dy[0, :, self.hidden_size :] = dpooled[:, self.hidden_size :]
        elif self.mode == "mean":
            dy[...] = where * (dpooled / lengths[:, None].astype(dtype))[None]
        else:
            np.put_along_axis(dy, where, dpooled[None], axis=0)
        return dy


class _RecurrentModel(Module):
    """The front end all task models share: token ids through an embedding, or real-valued features, with
    dropout before and after a recurrent stack that runs each sequence to its own length."""

    def _build_front(
        self,
        vocab_size,
        input_size,
        embed_dim,
        hidden_size,
        num_layers,
        cell,
        bidirectional,
        dropout,
        dtype,
        next_seed,
        extra_input: int = 0,
    ) -> None:
        if (vocab_size is None) == (input_size is None):
            raise ValueError(
                f"vocab_size, input_size: got {vocab_size!r} and {input_size!r}, expected exactly one "
                "(vocab_size for token ids, input_size for real-valued features)"
            )
        self.vocab_size = None if vocab_size is None else _checks.positive_int(vocab_size, "vocab_size")
        self.input_size = None if input_size is None else _checks.positive_int(input_size, "input_size")
        self.embed_dim = _checks.positive_int(embed_dim, "embed_dim")
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.num_layers = _checks.positive_int(num_layers, "num_layers")
        self.cell = _checks.choice(cell, "cell", CELLS)
        self.bidirectional = bool(bidirectional)
        self.dropout_p = _checks.real(dropout, "dropout", 0.0, 1.0, high_open=True)
        if self.vocab_size is not None:
            self.embedding = self._add_child(
                "embedding", Embedding(self.vocab_size, self.embed_dim, dtype, next_seed())
            )
            width = self.embed_dim
        else:
            self.embedding = None
            width = self.input_size
        self._rnn_input = width + extra_input
        self.drop_in = self._add_child("drop_in", Dropout(self.dropout_p, next_seed()))
        self.rnn = self._add_child(
            "rnn",
            make_recurrent(
                self.cell,
                self._rnn_input,
                self.hidden_size,
                self.num_layers,
                self.dropout_p,
                self.bidirectional,
                dtype,
                next_seed(),
            ),
        )
        self.drop_out = self._add_child("drop_out", Dropout(self.dropout_p, next_seed()))
        self.num_directions = 2 if self.bidirectional else 1

    def _front_config(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "input_size": self.input_size,
            "embed_dim": self.embed_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout_p,
            "dtype": self.dtype.name,
        }

    def _inputs(self, inputs) -> np.ndarray:
        if self.embedding is not None:
            ids = self.embedding.check_ids(inputs, "inputs")
            if ids.ndim != 2:
                raise ValueError(f"inputs: got shape {ids.shape}, expected (T, B) token ids")
            return ids
        x = _checks.as_float_array(inputs, "inputs", self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(
                f"inputs: got shape {x.shape}, expected (T, B, {self.input_size}) features with non-empty T and B"
            )
        _checks.check_finite(x, "inputs")
        return x

    def _embed(self, inputs: np.ndarray) -> np.ndarray:
        return self.embedding(inputs) if self.embedding is not None else inputs

    def _unembed(self, dx: np.ndarray) -> None:
        if self.embedding is not None:
            self.embedding.backward(dx)

    def _recurrent(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        y, _ = self.rnn.forward(self.drop_in(x), lengths=lengths)
        return y

    def _unrecurrent(self, dy: np.ndarray) -> np.ndarray:
        dx, _ = self.rnn.backward(dy)
        return self.drop_in.backward(dx)

    def _pending(self, cache):
        self._refuse_if_quantized("backward")
        if cache is None:
            raise RuntimeError("backward: call loss() in training mode first (each loss supports one backward)")
        return cache


# ----- classification ---------------------------------------------------------------------------------------
class SequenceClassifier(_RecurrentModel, Trainable):
    """One label per sequence: recurrent stack -> pooling over each sequence's steps -> linear layer.

    ``pooling`` "last" takes each sequence's own last step (both final states when bidirectional), "mean" and
    "max" pool over its steps. ``dropout`` applies to the inputs, between recurrent layers and to the pooled
    vector.

    ``fit(x, y)``, ``evaluate(x, y)``, ``predict(x)``: ``x`` is a list of sequences (1-d token ids, or (T_i,
    input_size) features for a model built with ``input_size``), or a padded time-major array (T, N) / (T, N,
    input_size) with ``lengths=`` (N,); ``y`` one class id per sequence.
    """

    TASK = "classify"

    def __init__(
        self,
        num_classes,
        vocab_size=None,
        input_size=None,
        embed_dim=100,
        hidden_size=128,
        num_layers=1,
        cell="lstm",
        bidirectional=False,
        pooling="last",
        dropout=0.0,
        seed=None,
        dtype="float32",
    ):
        super().__init__()
        self.num_classes = _checks.positive_int(num_classes, "num_classes", minimum=2)
        self.pooling = _checks.choice(pooling, "pooling", POOLINGS)
        next_seed = _seeds(seed)
        self._build_front(
            vocab_size, input_size, embed_dim, hidden_size, num_layers, cell, bidirectional, dropout, dtype, next_seed
        )
        width = self.num_directions * self.hidden_size
        self.head = self._add_child("head", Linear(width, self.num_classes, True, dtype, next_seed()))
        self._pool = _Pooling(self.pooling, self.hidden_size, self.bidirectional)
        self._dlogits = None

    def config(self) -> dict:
        return {"num_classes": self.num_classes, **self._front_config(), "pooling": self.pooling}

    def forward(self, inputs, lengths=None) -> np.ndarray:
        """Logits (B, num_classes) for inputs (T, B) ids or (T, B, input_size) features."""
        inputs = self._inputs(inputs)
        T, B = inputs.shape[:2]
        lengths = _check_lengths(lengths, T, B)
        y = self._recurrent(self._embed(inputs), lengths)
        return self.head(self.drop_out(self._pool.forward(y, lengths, self.training)))

    __call__ = forward

    def _labels(self, labels, B: int) -> np.ndarray:
        labels = _checks.as_int_array(labels, "labels", ndim=1)
        if labels.shape != (B,):
            raise ValueError(f"labels: got shape {labels.shape}, expected ({B},), one label per sequence")
        _checks.check_range(labels, "labels", 0, self.num_classes - 1)
        return labels

    def loss(self, inputs, labels, lengths=None) -> float:
        """Mean cross-entropy (nats per sequence) of ``labels`` (B,); in training mode the gradient is kept for
        ``backward()``."""
        logits = self.forward(inputs, lengths)
        labels = self._labels(labels, logits.shape[0])
        if self.training:
            loss, _, self.last_correct, self._dlogits = _softmax_cross_entropy(logits, labels, with_grad=True)
        else:
            loss, _, self.last_correct = _softmax_cross_entropy(logits, labels)
            self._dlogits = None
        return loss

    def backward(self) -> None:
        """Accumulate the gradients of the last training-mode ``loss`` into ``grads``."""
        dlogits, self._dlogits = self._pending(self._dlogits), None
        dpooled = self.drop_out.backward(self.head.backward(dlogits))
        self._unembed(self._unrecurrent(self._pool.backward(dpooled)))

    def _logits(self, inputs, lengths) -> np.ndarray:
        if isinstance(inputs, (list, tuple)):
            from .tasks.classify import predict_labels
            from .tasks.common import sequences_of

            return predict_labels(self, sequences_of(inputs, lengths, "inputs"))[1]
        with evaluation_mode(self):
            return self.forward(inputs, lengths)

    def predict_proba(self, inputs, lengths=None) -> np.ndarray:
        """Class probabilities (B, num_classes), float64, of a padded batch or a list of sequences."""
        logits = self._logits(inputs, lengths).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, inputs, lengths=None) -> np.ndarray:
        """The most likely class of each sequence, int64 (B,), of a padded batch or a list of sequences."""
        return self._logits(inputs, lengths).argmax(axis=1).astype(np.int64)


# ----- CRF --------------------------------------------------------------------------------------------------
class CRF(Module):
    """Linear-chain conditional random field over per-token emission scores (T, B, num_tags).

    A tag sequence scores ``start_transitions[y_0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] +
    end_transitions[y_last]`` (pytorch-crf's parameter names and layout). The forward algorithm, its gradient and
    Viterbi decoding run in C++.
    """

    def __init__(self, num_tags, dtype="float32", seed=None):
        super().__init__()
        self.num_tags = _checks.positive_int(num_tags, "num_tags")
        dtype = _checks.float_dtype(dtype)
        rng = _checks.rng(seed)
        C = self.num_tags
        self._add_param("transitions", rng.uniform(-0.1, 0.1, (C, C)).astype(dtype))
        self._add_param("start_transitions", rng.uniform(-0.1, 0.1, C).astype(dtype))
        self._add_param("end_transitions", rng.uniform(-0.1, 0.1, C).astype(dtype))
        self._pending_grads = None

    def config(self) -> dict:
        return {"num_tags": self.num_tags, "dtype": self.dtype.name}

    def _scores(self, emissions, lengths):
        emissions = _checks.as_float_array(emissions, "emissions", self.dtype, ndim=3)
        T, B, C = emissions.shape
        if C != self.num_tags or T == 0 or B == 0:
            raise ValueError(
                f"emissions: got shape {emissions.shape}, expected (T, B, {self.num_tags}) with non-empty T and B"
            )
        _checks.check_finite(emissions, "emissions")
        return emissions, _check_lengths(lengths, T, B)

    def _tags(self, tags, emissions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        tags = _checks.as_int_array(tags, "tags", ndim=2)
        if tags.shape != emissions.shape[:2]:
            raise ValueError(f"tags: got shape {tags.shape}, expected {emissions.shape[:2]} like emissions' (T, B)")
        _checks.check_range(tags[_valid_mask(lengths, tags.shape[0])], "tags", 0, self.num_tags - 1)
        return tags

    def nll(self, emissions, tags, lengths=None) -> np.ndarray:
        """-log p(tags | emissions) of each sequence, float64 (B,); keeps no gradient."""
        emissions, lengths = self._scores(emissions, lengths)
        return self._nll(emissions, self._tags(tags, emissions, lengths), lengths)

    def _nll(self, emissions: np.ndarray, tags: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """``nll`` of checked arguments, without gradients."""
        return core.crf_nll(
            emissions=emissions,
            tags=tags,
            lengths=lengths,
            start=self._params["start_transitions"],
            end=self._params["end_transitions"],
            trans=self._params["transitions"],
            demissions=None,
            dstart=None,
            dend=None,
            dtrans=None,
            grad_scale=1.0,
        )

    def loss(self, emissions, tags, lengths=None) -> float:
        """The summed negative log-likelihood of ``tags`` divided by the number of tokens (so it is comparable
        with a per-token cross-entropy). In training mode the gradient is kept for ``backward()``."""
        emissions, lengths = self._scores(emissions, lengths)
        tags = self._tags(tags, emissions, lengths)
        scale = 1.0 / float(lengths.sum())
        if not self.training:
            self._pending_grads = None
            return float(self._nll(emissions, tags, lengths).sum() * scale)
        demissions = np.empty_like(emissions)
        grads = {name: np.zeros_like(value) for name, value in self._params.items()}
        nll = core.crf_nll(
            emissions=emissions,
            tags=tags,
            lengths=lengths,
            start=self._params["start_transitions"],
            end=self._params["end_transitions"],
            trans=self._params["transitions"],
            demissions=demissions,
            dstart=grads["start_transitions"],
            dend=grads["end_transitions"],
            dtrans=grads["transitions"],
            grad_scale=scale,
        )
        self._pending_grads = (demissions, grads)
        return float(nll.sum() * scale)

    def backward(self) -> np.ndarray:
        """Accumulate the parameter gradients of the last training-mode ``loss``; returns d loss / d emissions."""
        if self._pending_grads is None:
            raise RuntimeError("backward: call loss() in training mode first (each loss supports one backward)")
        demissions, grads = self._pending_grads
        self._pending_grads = None
        for name, grad in grads.items():
            self._grads[name] += grad
        return demissions

    def decode(self, emissions, lengths=None) -> tuple[np.ndarray, np.ndarray]:
        """Viterbi: the best tags (T, B) int64 (-1 at padded positions) and their scores (B,) float64."""
        emissions, lengths = self._scores(emissions, lengths)
        return core.crf_viterbi(
            emissions=emissions,
            lengths=lengths,
            start=self._params["start_transitions"],
            end=self._params["end_transitions"],
            trans=self._params["transitions"],
        )


# ----- tagging ----------------------------------------------------------------------------------------------
class SequenceTagger(_RecurrentModel, Trainable):
    """One tag per token: [word embedding | feature embeddings | character features] -> recurrent stack (two
    directions by default) -> linear layer -> per-token softmax, or a CRF with ``crf=True``.

    ``feature_vocab_sizes`` declares extra categorical columns (a part-of-speech column, a predicate indicator),
    each embedded in ``feature_dim`` values. ``char_features`` adds a character BiLSTM over each word's
    characters (ids below ``char_vocab_size``; 0 is padding), whose two final states (``char_hidden_size`` each)
    describe words the vocabulary does not know. All words of a batch go through the character BiLSTM as one
    batch, so no Python runs per word or step.

    ``fit(x, y)``, ``evaluate(x, y)``: ``x`` as for SequenceClassifier, ``y`` one array of tag ids per sequence;
    ``tag_names`` (an option of both, saved with the model) name the tag ids, and chunk tags (IOB1, IOB2, IOBES)
    make ``evaluate`` report conlleval's chunk F1 and ``fit`` keep the weights of the best one. ``predict`` of a
    list of sequences returns a list of tag-id arrays.
    """

    TASK = "tag"

    def __init__(
        self,
        num_tags,
        vocab_size=None,
        input_size=None,
        embed_dim=100,
        hidden_size=128,
        num_layers=1,
        cell="lstm",
        bidirectional=True,
        feature_vocab_sizes=(),
        feature_dim=20,
        char_features=False,
        char_vocab_size=None,
        char_embed_dim=25,
        char_hidden_size=25,
        crf=False,
        dropout=0.0,
        seed=None,
        dtype="float32",
        tag_names=None,
    ):
        super().__init__()
        self.num_tags = _checks.positive_int(num_tags, "num_tags", minimum=2)
        self.tag_names = tag_names
        if isinstance(feature_vocab_sizes, (str, bytes)) or not hasattr(feature_vocab_sizes, "__iter__"):
            raise TypeError(
                f"feature_vocab_sizes: got {type(feature_vocab_sizes).__name__}, expected a list of "
                "vocabulary sizes, one per feature column"
            )
        self.feature_vocab_sizes = tuple(
            _checks.positive_int(v, f"feature_vocab_sizes[{k}]") for k, v in enumerate(feature_vocab_sizes)
        )
        self.feature_dim = _checks.positive_int(feature_dim, "feature_dim")
        self.char_features = bool(char_features)
        if self.char_features:
            if char_vocab_size is None:
                raise ValueError(
                    "char_vocab_size: got None, expected the number of character ids (0 is padding) "
                    "when char_features=True"
                )
            self.char_vocab_size = _checks.positive_int(char_vocab_size, "char_vocab_size", minimum=2)
        else:
            self.char_vocab_size = None
        self.char_embed_dim = _checks.positive_int(char_embed_dim, "char_embed_dim")
        self.char_hidden_size = _checks.positive_int(char_hidden_size, "char_hidden_size")
        self.crf = bool(crf)
        next_seed = _seeds(seed)
        extra = len(self.feature_vocab_sizes) * self.feature_dim
        extra += 2 * self.char_hidden_size if self.char_features else 0
        self._build_front(
            vocab_size,
            input_size,
            embed_dim,
            hidden_size,
            num_layers,
            cell,
            bidirectional,
            dropout,
            dtype,
            next_seed,
            extra_input=extra,
        )
        self.feature_embeddings = [
            self._add_child(f"feature_embedding{k}", Embedding(size, self.feature_dim, dtype, next_seed()))
            for k, size in enumerate(self.feature_vocab_sizes)
        ]
        if self.char_features:
            self.char_embedding = self._add_child(
                "char_embedding", Embedding(self.char_vocab_size, self.char_embed_dim, dtype, next_seed())
            )
            self.char_rnn = self._add_child(
                "char_rnn",
                LSTM(self.char_embed_dim, self.char_hidden_size, bidirectional=True, dtype=dtype, seed=next_seed()),
            )
            self._char_pool = _Pooling("last", self.char_hidden_size, True)
        width = self.num_directions * self.hidden_size
        self.head = self._add_child("head", Linear(width, self.num_tags, True, dtype, next_seed()))
        self.crf_layer = self._add_child("crf_layer", CRF(self.num_tags, dtype, next_seed())) if self.crf else None
        self._cache = None
        self._demissions = None

    def config(self) -> dict:
        return {
            "num_tags": self.num_tags,
            **self._front_config(),
            "feature_vocab_sizes": list(self.feature_vocab_sizes),
            "feature_dim": self.feature_dim,
            "char_features": self.char_features,
            "char_vocab_size": self.char_vocab_size,
            "char_embed_dim": self.char_embed_dim,
            "char_hidden_size": self.char_hidden_size,
            "crf": self.crf,
            "tag_names": self.tag_names,
        }

    @property
    def tag_names(self) -> list[str] | None:
        """The name of each tag id (saved with the model); chunk tags (IOB1, IOB2, IOBES) give chunk F1 in
        ``evaluate``."""
        return self._tag_names

    @tag_names.setter
    def tag_names(self, names) -> None:
        if names is not None:
            if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
                raise TypeError(f"tag_names: got {type(names).__name__}, expected a list of {self.num_tags} names")
            names = [str(n) for n in names]
            if len(names) != self.num_tags or len(set(names)) != len(names):
                raise ValueError(
                    f"tag_names: got {len(names)} names ({len(set(names))} distinct), expected "
                    f"{self.num_tags} distinct names, one per tag id"
                )
        self._tag_names = names

    # ----- inputs -------------------------------------------------------------------------------------------
    def _features(self, features, T: int, B: int):
        K = len(self.feature_vocab_sizes)
        if K == 0:
            if features is not None:
                raise ValueError("features: got an array, expected None (the model has no feature_vocab_sizes)")
            return None
        if features is None:
            raise ValueError(f"features: got None, expected (T, B, {K}) ids for the model's {K} feature column(s)")
        features = _checks.as_int_array(features, "features", ndim=3)
        if features.shape != (T, B, K):
            raise ValueError(f"features: got shape {features.shape}, expected {(T, B, K)}")
        for k, size in enumerate(self.feature_vocab_sizes):
            _checks.check_range(features[:, :, k], f"features[:, :, {k}]", 0, size - 1)
        return features

    def _chars(self, chars, T: int, B: int, lengths: np.ndarray):
        """(character ids (W, N) of the N words inside their sequences, their lengths (N,), the (t, b) mask)."""
        if not self.char_features:
            if chars is not None:
                raise ValueError("chars: got an array, expected None (the model was built without char_features)")
            return None
        if chars is None:
            raise ValueError("chars: got None, expected (T, B, W) character ids (0 = padding) for char_features")
        chars = _checks.as_int_array(chars, "chars", ndim=3)
        if chars.shape[:2] != (T, B) or chars.shape[2] == 0:
            raise ValueError(f"chars: got shape {chars.shape}, expected ({T}, {B}, W) with W >= 1")
        _checks.check_range(chars, "chars", 0, self.char_vocab_size - 1)
        valid = _valid_mask(lengths, T)
        words = chars[valid]  # (N, W) in (t, b) order
        present = words != 0
        char_lengths = present.sum(axis=1)
        bad = (char_lengths == 0) | (present != (np.arange(words.shape[1]) < char_lengths[:, None])).any(axis=1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            t, b = np.argwhere(valid)[k]
            problem = "no characters" if char_lengths[k] == 0 else "a 0 (padding) between its characters"
            raise ValueError(
                f"chars: the word at (t={t}, b={b}) has {problem}, expected its character ids first "
                "and 0 only as padding after them"
            )
        width = int(char_lengths.max())
        return np.ascontiguousarray(words[:, :width].T), char_lengths, valid

    def _char_vectors(self, char_input, T: int, B: int) -> np.ndarray:
        ids, char_lengths, valid = char_input
        y, _ = self.char_rnn.forward(self.char_embedding(ids), lengths=char_lengths)
        out = np.zeros((T, B, 2 * self.char_hidden_size), dtype=self.dtype)
        out[valid] = self._char_pool.forward(y, char_lengths, self.training)
        return out

    def _char_backward(self, dvectors: np.ndarray, valid: np.ndarray) -> None:
        dy = self._char_pool.backward(np.ascontiguousarray(dvectors[valid]))
        dx, _ = self.char_rnn.backward(dy)
        self.char_embedding.backward(dx)

    # ----- forward / backward -------------------------------------------------------------------------------
    def forward(self, inputs, lengths=None, features=None, chars=None) -> np.ndarray:
        """Emission scores (T, B, num_tags) for inputs (T, B) ids or (T, B, input_size) features, with
        ``features`` (T, B, len(feature_vocab_sizes)) ids and ``chars`` (T, B, W) character ids when the model has
        them."""
        inputs = self._inputs(inputs)
        T, B = inputs.shape[:2]
        lengths = _check_lengths(lengths, T, B)
        features = self._features(features, T, B)
        char_input = self._chars(chars, T, B, lengths)
        parts = [self._embed(inputs)]
        parts += [emb(features[:, :, k]) for k, emb in enumerate(self.feature_embeddings)]
        if char_input is not None:
            parts.append(self._char_vectors(char_input, T, B))
        x = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        y = self._recurrent(x, lengths)
        self._cache = (
            ([p.shape[2] for p in parts], None if char_input is None else char_input[2]) if self.training else None
        )
        return self.head(self.drop_out(y))

    __call__ = forward

    def _targets(self, tags, T: int, B: int, lengths: np.ndarray) -> np.ndarray:
        tags = _checks.as_int_array(tags, "tags", ndim=2)
        if tags.shape != (T, B):
            raise ValueError(f"tags: got shape {tags.shape}, expected ({T}, {B}) like inputs")
        valid = _valid_mask(lengths, T)
        _checks.check_range(tags[valid], "tags", 0, self.num_tags - 1)
        return np.where(valid, tags, _IGNORE)

    def loss(self, inputs, tags, lengths=None, features=None, chars=None) -> float:
        """Mean negative log-likelihood per token of ``tags`` (T, B) (any value at padded positions): the
        per-token cross-entropy, or with a CRF the sequences' negative log-likelihood divided by their tokens.
        In training mode the gradient is kept for ``backward()``."""
        emissions = self.forward(inputs, lengths, features, chars)
        T, B = emissions.shape[:2]
        lengths = _check_lengths(lengths, T, B)
        targets = self._targets(tags, T, B, lengths)
        if self.crf:
            return self.crf_layer.loss(emissions, np.where(targets == _IGNORE, 0, targets), lengths)
        if self.training:
            loss, _, _, self._demissions = _softmax_cross_entropy(
                emissions, targets, ignore_index=_IGNORE, with_grad=True
            )
        else:
            loss, _, _ = _softmax_cross_entropy(emissions, targets, ignore_index=_IGNORE)
            self._demissions = None
        return loss

    def backward(self) -> None:
        """Accumulate the gradients of the last training-mode ``loss`` into ``grads``."""
        widths, valid = self._pending(self._cache)
        self._cache = None
        if self.crf:
            demissions = self.crf_layer.backward()
        else:
            demissions, self._demissions = self._pending(self._demissions), None
        dx = self._unrecurrent(self.drop_out.backward(self.head.backward(demissions)))
        parts = np.split(dx, np.cumsum(widths)[:-1], axis=2)
        self._unembed(parts[0])
        for emb, dpart in zip(self.feature_embeddings, parts[1:]):
            emb.backward(dpart)
        if self.char_features:
            self._char_backward(parts[-1], valid)

    def predict(self, inputs, lengths=None, features=None, chars=None) -> np.ndarray:
        """The best tag of every token, int64 (T, B), -1 at padded positions: Viterbi with a CRF, else each
        token's most likely tag. ``inputs`` a list of sequences (without features or characters) gives a list
        of tag-id arrays, one per sequence."""
        if isinstance(inputs, (list, tuple)):
            from .tasks.common import sequences_of
            from .tasks.tag import EncodedSentences, predict_tags

            return predict_tags(self, EncodedSentences(sequences_of(inputs, lengths, "inputs"), None, None, None))
        with evaluation_mode(self):
            emissions = self.forward(inputs, lengths, features, chars)
        T, B = emissions.shape[:2]
        lengths = _check_lengths(lengths, T, B)
        if self.crf:
            return self.crf_layer.decode(emissions, lengths)[0]
        return np.where(_valid_mask(lengths, T), emissions.argmax(axis=2), PADDING).astype(np.int64)


# ----- forecasting ------------------------------------------------------------------------------------------
class Forecaster(_RecurrentModel, Trainable):
    """Forecasts the next ``horizon`` values of ``input_size`` series from a history window.

    Scaling: ``fit_scaler`` takes the mean and standard deviation of each series from the training split (they
    are saved with the model). Each step feeds the network two values per series, the standardised value and its
    difference from the history's last value divided by the standard deviation; the network predicts the
    ``horizon`` next values as changes from that last value. So the model learns corrections to the naive
    forecast and follows a trend that leaves the training range. Without ``fit_scaler`` the scaling is the
    identity (mean 0, deviation 1).

    Multi-step forecasts are direct: all ``horizon`` values come from one pass. ``predict(history, steps)``
    beyond ``horizon`` feeds the forecasts back (recursive), ``horizon`` values at a time.

    ``fit(x)`` and ``evaluate(x)`` take a series (N,) (or (N, input_size)); options ``window`` (history length,
    default two seasons, else 24; ``fit`` saves it with the model) and ``season`` (for the seasonal-naive
    baseline). ``fit`` sets the scaling from the training part; ``validation_data`` is a series that continues
    ``x`` and ``validation_split`` takes the end of ``x``.
    """

    TASK = "forecast"

    def __init__(
        self,
        input_size=1,
        hidden_size=64,
        num_layers=1,
        cell="lstm",
        horizon=1,
        loss="mse",
        dropout=0.0,
        mean=None,
        std=None,
        seed=None,
        dtype="float32",
        window=None,
    ):
        super().__init__()
        self.horizon = _checks.positive_int(horizon, "horizon")
        # The history length it was trained on (set by fit); evaluate's default window.
        self.window = None if window is None else _checks.positive_int(window, "window")
        self.loss_kind = _checks.choice(loss, "loss", FORECAST_LOSSES)
        input_size = _checks.positive_int(input_size, "input_size")
        next_seed = _seeds(seed)
        # Real-valued inputs only (embed_dim is unused); the second input per series is its change from the
        # window's last value.
        self._build_front(
            None, input_size, 1, hidden_size, num_layers, cell, False, dropout, dtype, next_seed, extra_input=input_size
        )
        self.head = self._add_child(
            "head", Linear(self.hidden_size, self.horizon * input_size, True, dtype, next_seed())
        )
        self.mean = self._scale_values(0.0 if mean is None else mean, "mean")
        self.std = self._scale_values(1.0 if std is None else std, "std")
        if (self.std <= 0).any():
            raise ValueError(f"std: got {self.std.tolist()}, expected values > 0")
        self._pool = _Pooling("last", self.hidden_size, False)
        self._dout = None

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "horizon": self.horizon,
            "loss": self.loss_kind,
            "dropout": self.dropout_p,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "dtype": self.dtype.name,
            "window": self.window,
        }

    def _scale_values(self, value, name: str) -> np.ndarray:
        if np.ndim(value) == 0:  # one number for every series
            value = [value] * self.input_size
        arr = _checks.as_float_array(value, name, np.float64, ndim=1)
        if arr.shape != (self.input_size,):
            raise ValueError(f"{name}: got shape {arr.shape}, expected ({self.input_size},), one per series")
        _checks.check_finite(arr, name)
        return arr

    def fit_scaler(self, values) -> None:
        """Set the scaling from training values (N,) or (N, input_size); a constant series gets deviation 1."""
        arr = _checks.as_float_array(values, "values", np.float64)
        if arr.ndim == 1 and self.input_size == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.input_size or arr.shape[0] == 0:
            raise ValueError(f"values: got shape {arr.shape}, expected (N, {self.input_size}) with N >= 1")
        _checks.check_finite(arr, "values")
        std = arr.std(axis=0)
        self.mean, self.std = arr.mean(axis=0), np.where(std > 0, std, 1.0)

    def _history(self, history) -> np.ndarray:
        x = _checks.as_float_array(history, "history", np.float64)
        if x.ndim == 2 and self.input_size == 1:
            x = x[:, :, None]
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(
                f"history: got shape {x.shape}, expected (T, B, {self.input_size}) with non-empty T "
                "and B" + (" or (T, B)" if self.input_size == 1 else "")
            )
        _checks.check_finite(x, "history")
        return x

    def _forward(self, history, lengths):
        """(scaled changes (horizon, B, F) from the network, the last values (B, F))."""
        x = self._history(history)
        T, B, F = x.shape
        lengths = _check_lengths(lengths, T, B)
        last = x[lengths - 1, np.arange(B)]
        features = np.concatenate([(x - self.mean) / self.std, (x - last[None]) / self.std], axis=2)
        y = self._recurrent(features.astype(self.dtype), lengths)
        out = self.head(self.drop_out(self._pool.forward(y, lengths, self.training)))
        return out.reshape(B, self.horizon, F).transpose(1, 0, 2), last

    def forward(self, history, lengths=None) -> np.ndarray:
        """The next ``horizon`` values (horizon, B, input_size), float64, after each history (T, B, input_size)
        (or (T, B) for one series), in the series' units."""
        changes, last = self._forward(history, lengths)
        return last[None] + changes * self.std

    __call__ = forward

    def loss(self, history, targets, lengths=None) -> float:
        """Mean squared (or absolute) error of the forecasts of ``targets`` (horizon, B, input_size), measured in
        standard deviations of the training data. In training mode the gradient is kept for ``backward()``."""
        changes, last = self._forward(history, lengths)
        H, B, F = changes.shape
        y = _checks.as_float_array(targets, "targets", np.float64)
        if y.shape == (H, B) and F == 1:
            y = y[:, :, None]
        if y.shape != (H, B, F):
            raise ValueError(f"targets: got shape {y.shape}, expected {(H, B, F)} (horizon, B, input_size)")
        _checks.check_finite(y, "targets")
        diff = changes - (y - last[None]) / self.std
        if self.loss_kind == "mse":
            loss, grad = float(np.mean(diff**2)), 2.0 * diff / diff.size
        else:
            loss, grad = float(np.mean(np.abs(diff))), np.sign(diff) / diff.size
        self._dout = grad.transpose(1, 0, 2).reshape(B, H * F).astype(self.dtype) if self.training else None
        return loss

    def backward(self) -> None:
        """Accumulate the gradients of the last training-mode ``loss`` into ``grads``."""
        dout, self._dout = self._pending(self._dout), None
        self._unrecurrent(self._pool.backward(self.drop_out.backward(self.head.backward(dout))))

    def predict(self, history, steps=None) -> np.ndarray:
        """Forecast ``steps`` values (default ``horizon``) after ``history``, float64. One series: (T,) (when
        input_size is 1) gives (steps,), (T, input_size) gives (steps, input_size); a batch (T, B, input_size)
        gives (steps, B, input_size). Beyond ``horizon``, the forecasts are appended to the history window (which
        keeps its length) and fed back."""
        steps = self.horizon if steps is None else _checks.positive_int(steps, "steps")
        x = _checks.as_float_array(history, "history", np.float64)
        single, x_was_1d = x.ndim in (1, 2), x.ndim == 1
        if x.ndim == 1:
            if self.input_size != 1:
                raise ValueError(
                    f"history: got shape {x.shape}, expected (T, {self.input_size}) for one series of "
                    f"{self.input_size} values per step, or (T, B, {self.input_size})"
                )
            x = x[:, None]
        if single:
            x = x[:, None, :]
        x = self._history(x)
        forecasts = []
        with evaluation_mode(self):
            while sum(len(f) for f in forecasts) < steps:
                block = self.forward(x)
                forecasts.append(block)
                x = np.concatenate([x, block])[len(block) :]
        out = np.concatenate(forecasts)[:steps]
        if single:
            out = out[:, 0, :]
            return out[:, 0] if x_was_1d else out
        return out


__all__ = ["SequenceClassifier", "SequenceTagger", "Forecaster", "CRF"]
