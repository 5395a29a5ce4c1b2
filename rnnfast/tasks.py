"""Tasks plug data into the one training loop (rnnfast.train): how to batch, step and evaluate.

- ``LanguageModelTask``: next-token prediction over token streams (truncated BPTT);
- ``ClassificationTask``, ``TaggingTask``, ``ForecastTask``: the sequence tasks of rnnfast.seqmodels, with the
  vocabularies that turn their text into ids (``TextVocabulary``, ``TaggingVocabulary``, saved in checkpoints as
  JSON) and the naive and seasonal-naive baselines that forecasts are judged against.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import _checks, data, metrics
# A model's own logits go unchecked: a diverged model must show as a non-finite loss, not as an argument error.
from .models import _softmax_cross_entropy
from .seqmodels import evaluation_mode


def batchify(ids, batch_size: int, name: str = "data") -> np.ndarray:
    """Lay a token stream out as ``batch_size`` parallel streams, (N, B): column b continues where it left off in
    the next batch, so the final state of one batch is the right initial state of the next (truncated BPTT).

    The result is a view of ``ids`` (the transpose of a (B, N) reshape), never a copy, so a memory-mapped corpus
    stays on disk; ``LanguageModelTask`` copies one (T, B) batch at a time."""
    ids = np.asanyarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"{name}: got {_checks.describe(ids)}, expected a 1-d array of token ids")
    per_stream = len(ids) // batch_size
    if per_stream < 2:
        raise ValueError(f"{name}: {len(ids)} tokens are too few for batch size {batch_size} "
                         f"(need at least {2 * batch_size})")
    return ids[: per_stream * batch_size].reshape(batch_size, per_stream).T


def _state_to_json(state):
    if state is None:
        return None
    parts = state if isinstance(state, tuple) else (state,)
    return [p.tolist() for p in parts]


def _state_from_json(obj, dtype):
    if obj is None:
        return None
    parts = tuple(np.asarray(p, dtype=dtype) for p in obj)
    return parts if len(parts) == 2 else parts[0]


class LanguageModelTask:
    """Next-token prediction over token streams with truncated back-propagation through time."""

    metric_names = ("loss", "ppl", "bpc", "accuracy")

    def __init__(self, train_ids, val_ids, seq_len: int, batch_size: int, test_ids=None, eval_batch_size=None,
                 dtype=np.float32):
        self.seq_len = seq_len
        self.train = batchify(train_ids, batch_size, "training data")
        eval_batch = eval_batch_size or batch_size
        self.splits = {"val": self._eval_streams(val_ids, eval_batch, "validation data")}
        if test_ids is not None:
            self.splits["test"] = self._eval_streams(test_ids, eval_batch, "test data")
        self.dtype = dtype

    @staticmethod
    def _eval_streams(ids, batch_size: int, name: str) -> np.ndarray:
        # Short evaluation sets still get evaluated, with fewer parallel streams.
        return batchify(ids, max(1, min(batch_size, len(ids) // 2)), name)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return math.ceil((len(self.train) - 1) / self.seq_len)

    def _chunks(self, streams: np.ndarray, start: int = 0):
        # Inputs and targets overlap in all but one step: one int64 copy of n + 1 steps serves both.
        for i in range(start * self.seq_len, len(streams) - 1, self.seq_len):
            n = min(self.seq_len, len(streams) - 1 - i)
            steps = np.ascontiguousarray(streams[i : i + n + 1], dtype=np.int64)
            yield steps[:n], steps[1:]

    def train_batches(self, epoch: int, start: int):
        return self._chunks(self.train, start)

    def train_step(self, model, batch, carry):
        inputs, targets = batch
        loss, state = model.loss(inputs, targets, carry)
        model.backward()
        return loss, inputs.size, state

    def evaluate(self, model, split: str, with_f1: bool = False) -> dict:
        total, count, correct = 0.0, 0, 0
        y_true, y_pred = [], []
        state = None
        for inputs, targets in self._chunks(self.splits[split]):
            logits, state = model.forward(inputs, state)
            loss, n, right = _softmax_cross_entropy(logits, targets)
            total, count, correct = total + loss * n, count + n, correct + right
            if with_f1:
                y_true.append(targets.reshape(-1))
                y_pred.append(logits.argmax(-1).reshape(-1))
        loss = total / count
        out = {"loss": loss, "ppl": metrics.perplexity(loss), "bpc": metrics.bits_per_char(loss),
               "accuracy": correct / count}
        if with_f1:
            _, _, out["macro_f1"] = metrics.precision_recall_f1(np.concatenate(y_true), np.concatenate(y_pred))
            out["macro_f1"] = float(out["macro_f1"])
        return out

    def carry_to_json(self, carry):
        return _state_to_json(carry)

    def carry_from_json(self, obj):
        return _state_from_json(obj, self.dtype)


# ----- vocabularies -----------------------------------------------------------------------------------------
UNK = "<unk>"
PAD = "<pad>"
MAX_WORD_CHARS = 32  # characters of a word the character features read; longer words are cut


class Vocabulary:
    """Strings to ids in a fixed order. ``specials`` come first (e.g. padding and ``<unk>``); with ``unknown`` set,
    strings outside the vocabulary map to its id, otherwise encoding one raises ValueError naming it."""

    def __init__(self, tokens, unknown: str | None = None):
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("tokens: got duplicates, expected each token once")
        if unknown is not None and unknown not in self.index:
            raise ValueError(f"unknown: got {unknown!r}, expected one of the tokens")
        self.unknown = unknown

    @classmethod
    def fit(cls, sequences, min_count: int = 1, specials=(), unknown: str | None = None) -> "Vocabulary":
        """``specials``, then every string of ``sequences`` (an iterable of lists of strings) seen at least
        ``min_count`` times, most frequent first (ties alphabetical, so the ids never depend on the order)."""
        counts = Counter(token for sequence in sequences for token in sequence)
        for special in specials:
            counts.pop(special, None)
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        return cls([*specials, *kept], unknown)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, items, name: str) -> np.ndarray:
        if self.unknown is not None:
            unk = self.index[self.unknown]
            return np.array([self.index.get(item, unk) for item in items], dtype=np.int64)
        try:
            return np.array([self.index[item] for item in items], dtype=np.int64)
        except KeyError as exc:
            shown = ", ".join(map(repr, self.tokens[:20])) + (", ..." if len(self.tokens) > 20 else "")
            raise ValueError(f"{name}: got {exc.args[0]!r}, which the model was not trained on, expected one of "
                             f"{shown}") from None

    def decode(self, ids) -> list[str]:
        return [self.tokens[i] for i in np.asarray(ids).tolist()]

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "unknown": self.unknown}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        return cls(d["tokens"], d["unknown"])


_WORD = re.compile(r"\w+(?:['\-]\w+)*|[^\w\s]")
_DIGIT = re.compile(r"\d")


def text_words(text: str) -> list[str]:
    """Lower-cased words of a text, punctuation marks as words of their own ("Isn't it?" -> isn't, it, ?)."""
    return _WORD.findall(text.lower())


def normalize_word(word: str) -> str:
    """A word as the tagger's word embedding sees it: lower case with every digit 0, so that rarer forms share
    statistics (the character features still see the word as written)."""
    return _DIGIT.sub("0", word.lower())


@dataclass
class TextVocabulary:
    """Words and labels of a classification task. An example without words reads as one unknown word."""

    words: Vocabulary
    labels: Vocabulary

    @classmethod
    def fit(cls, texts, labels, min_count: int = 1) -> "TextVocabulary":
        labels = sorted(set(labels))
        if len(labels) < 2:
            raise ValueError(f"labels: got only {labels!r}, expected at least 2 classes")
        return cls(Vocabulary.fit((text_words(t) for t in texts), min_count, (UNK,), UNK), Vocabulary(labels))

    def encode_texts(self, texts) -> list[np.ndarray]:
        return [self.words.encode(text_words(t) or [UNK], "texts") for t in texts]

    def encode_labels(self, labels) -> np.ndarray:
        return self.labels.encode(labels, "labels")

    def to_dict(self) -> dict:
        return {"words": self.words.to_dict(), "labels": self.labels.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "TextVocabulary":
        return cls(Vocabulary.from_dict(d["words"]), Vocabulary.from_dict(d["labels"]))


@dataclass
class EncodedSentences:
    """Sentences as ids: per sentence ``words`` (L,), ``features`` (L, K), ``chars`` (L, W) (0 = padding) and
    ``tags`` (L,); ``features``, ``chars`` and ``tags`` are None when not used."""

    words: list[np.ndarray]
    features: list[np.ndarray] | None
    chars: list[np.ndarray] | None
    tags: list[np.ndarray] | None

    def __len__(self) -> int:
        return len(self.words)

    def lengths(self) -> np.ndarray:
        return np.array([len(w) for w in self.words], dtype=np.int64)

    def batch(self, index) -> dict:
        """Padded time-major arrays for the sentences ``index``: inputs, lengths, features, chars, tags."""
        words, lengths = data.pad_batch([self.words[i] for i in index])
        out = {"inputs": words, "lengths": lengths, "features": None, "chars": None, "tags": None}
        if self.features is not None:
            out["features"] = data.pad_batch([self.features[i] for i in index])[0]
        if self.tags is not None:
            out["tags"] = data.pad_batch([self.tags[i] for i in index])[0]
        if self.chars is not None:
            width = max(self.chars[i].shape[1] for i in index)
            chars = np.zeros((len(words), len(index), width), dtype=np.int64)
            for b, i in enumerate(index):
                chars[:len(self.chars[i]), b, :self.chars[i].shape[1]] = self.chars[i]
            out["chars"] = chars
        return out


@dataclass
class TaggingVocabulary:
    """Words (normalised, see ``normalize_word``), one vocabulary per feature column, characters (with
    ``char_features``; id 0 is padding) and tags of a tagging task."""

    words: Vocabulary
    features: list[Vocabulary]
    chars: Vocabulary | None
    tags: Vocabulary

    @classmethod
    def fit(cls, sentences: data.TaggedSentences, min_count: int = 1, char_features: bool = False,
            extra_tags=()) -> "TaggingVocabulary":
        """From training sentences; ``extra_tags`` (e.g. the tags of validation and test files) join the tag set
        so that evaluation never meets a tag the model cannot output."""
        if sentences.tags is None:
            raise ValueError("sentences: got untagged sentences, expected tags to train on")
        words = Vocabulary.fit(([normalize_word(w) for w in s] for s in sentences.words), min_count, (UNK,), UNK)
        K = len(sentences.features[0][0]) if sentences.features and sentences.features[0] else 0
        features = [Vocabulary.fit(([tok[k] for tok in s] for s in sentences.features), 1, (UNK,), UNK)
                    for k in range(K)]
        chars = Vocabulary.fit((c for s in sentences.words for c in s), 1, (PAD, UNK), UNK) \
            if char_features else None
        tags = Vocabulary(sorted({t for s in sentences.tags for t in s} | set(extra_tags)))
        if len(tags) < 2:
            raise ValueError(f"tags: got only {tags.tokens!r}, expected at least 2 distinct tags")
        return cls(words, features, chars, tags)

    @property
    def chunk_scheme(self) -> str | None:
        """'iobes', 'iob2' (also right for IOB1) or None when the tags are not chunk tags."""
        prefixes = {tag.partition("-")[0] for tag in self.tags.tokens if tag != "O"}
        if not all("-" in tag for tag in self.tags.tokens if tag != "O") or not prefixes:
            return None
        if prefixes <= {"B", "I"}:
            return "iob2"
        return "iobes" if prefixes <= {"B", "I", "E", "S"} else None

    def _chars(self, sentence: list[str]) -> np.ndarray:
        width = min(MAX_WORD_CHARS, max(len(w) for w in sentence))
        out = np.zeros((len(sentence), width), dtype=np.int64)
        for j, word in enumerate(sentence):
            ids = self.chars.encode(word[:width], "chars")
            out[j, :len(ids)] = ids
        return out

    def encode(self, sentences: data.TaggedSentences, with_tags: bool = True) -> EncodedSentences:
        words = [self.words.encode([normalize_word(w) for w in s], "words") for s in sentences.words]
        features = None
        if self.features:
            if not sentences.features or len(sentences.features[0][0]) != len(self.features):
                got = len(sentences.features[0][0]) if sentences.features else 0
                raise ValueError(f"feature_columns: got {got} feature column(s), expected {len(self.features)} "
                                 "as in training")
            features = [np.stack([v.encode([tok[k] for tok in s], f"feature column {k}")
                                  for k, v in enumerate(self.features)], axis=1) for s in sentences.features]
        chars = [self._chars(s) for s in sentences.words] if self.chars is not None else None
        tags = None
        if with_tags:
            if sentences.tags is None:
                raise ValueError("sentences: got untagged sentences, expected a tag column to evaluate against")
            tags = [self.tags.encode(s, "tags") for s in sentences.tags]
        return EncodedSentences(words, features, chars, tags)

    def to_dict(self) -> dict:
        return {"words": self.words.to_dict(), "features": [v.to_dict() for v in self.features],
                "chars": None if self.chars is None else self.chars.to_dict(), "tags": self.tags.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "TaggingVocabulary":
        return cls(Vocabulary.from_dict(d["words"]), [Vocabulary.from_dict(v) for v in d["features"]],
                   None if d["chars"] is None else Vocabulary.from_dict(d["chars"]), Vocabulary.from_dict(d["tags"]))


# ----- shared batching --------------------------------------------------------------------------------------
class _SequenceBatches:
    """Training batches of similar-length sequences, a different order each epoch and the same order whenever
    the same epoch is replayed (so resuming mid-epoch continues exactly)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int):
        self.lengths = lengths
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.seed = seed
        self.count = len(data.bucket_batches(lengths, self.batch_size, seed=seed))

    def epoch(self, epoch: int, start: int):
        return data.bucket_batches(self.lengths, self.batch_size, seed=self.seed + epoch)[start:]


def _in_order(lengths: np.ndarray, batch_size: int):
    """Evaluation batches: sorted by length, so little padding; callers put results back by index."""
    return data.bucket_batches(lengths, batch_size, shuffle=False)


def _check_split(split, name: str):
    if split is None:
        return None
    sequences, targets = split
    if len(sequences) == 0:
        raise ValueError(f"{name}: got no examples, expected at least one")
    if len(targets) != len(sequences):
        raise ValueError(f"{name}: got {len(sequences)} sequences and {len(targets)} targets, expected as many")
    return list(sequences), np.asarray(targets, dtype=np.int64)


def predict_labels(model, sequences, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(class ids (N,), logits (N, C)) of a SequenceClassifier for sequences of ids (T_i,) or features
    (T_i, input_size), in their order."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    logits = None
    with evaluation_mode(model):
        for index in _in_order(lengths, batch_size):
            padded, lens = data.pad_batch([sequences[i] for i in index])
            out = model.forward(padded, lens)
            if logits is None:
                logits = np.empty((len(sequences), out.shape[1]), dtype=out.dtype)
            logits[index] = out
    return logits.argmax(axis=1).astype(np.int64), logits


def predict_tags(model, sentences: EncodedSentences, batch_size: int = 64) -> list[np.ndarray]:
    """The tag ids a SequenceTagger predicts for each sentence, in their order."""
    out: list[np.ndarray] = [None] * len(sentences)
    for index in _in_order(sentences.lengths(), batch_size):
        b = sentences.batch(index)
        tags = model.predict(b["inputs"], b["lengths"], b["features"], b["chars"])
        for k, i in enumerate(index):
            out[i] = tags[:b["lengths"][k], k]
    return out


# ----- classification ---------------------------------------------------------------------------------------
class ClassificationTask:
    """One label per sequence. Each split is ``(sequences, labels)``: a list of id arrays (T_i,) (or feature
    arrays (T_i, input_size)) and their class ids. The best checkpoint is the one with the highest validation
    accuracy."""

    metric_names = ("loss", "accuracy", "macro_f1")
    selection = ("accuracy", "max")

    def __init__(self, train, val, batch_size: int = 32, test=None, seed: int = 0):
        self.splits = {"train": _check_split(train, "train"), "val": _check_split(val, "val")}
        if test is not None:
            self.splits["test"] = _check_split(test, "test")
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self._batches = _SequenceBatches(np.array([len(s) for s in self.splits["train"][0]]), batch_size, seed)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return self._batches.count

    def train_batches(self, epoch: int, start: int):
        sequences, labels = self.splits["train"]
        for index in self._batches.epoch(epoch, start):
            padded, lengths = data.pad_batch([sequences[i] for i in index])
            yield padded, lengths, labels[index]

    def train_step(self, model, batch, carry):
        inputs, lengths, labels = batch
        loss = model.loss(inputs, labels, lengths)
        model.backward()
        return loss, len(labels), None

    def evaluate(self, model, split: str) -> dict:
        sequences, labels = self.splits[split]
        predicted, logits = predict_labels(model, sequences, self.batch_size)
        loss, count, _ = _softmax_cross_entropy(logits, labels)
        _, _, macro_f1 = metrics.precision_recall_f1(labels, predicted)
        return {"loss": loss, "accuracy": metrics.accuracy(labels, predicted), "macro_f1": float(macro_f1)}

    def carry_to_json(self, carry):
        return None

    def carry_from_json(self, obj):
        return None


# ----- tagging ----------------------------------------------------------------------------------------------
class TaggingTask:
    """One tag per token over EncodedSentences splits. Reports per-token accuracy and, when the tags are chunk
    tags (``tag_names`` with a ``scheme``), conlleval's chunk F1, by which the best checkpoint is chosen
    (otherwise by accuracy)."""

    def __init__(self, train: EncodedSentences, val: EncodedSentences, tag_names, batch_size: int = 32,
                 test: EncodedSentences | None = None, scheme: str | None = None, seed: int = 0):
        self.splits = {"train": train, "val": val}
        if test is not None:
            self.splits["test"] = test
        for name, split in self.splits.items():
            if len(split) == 0 or split.tags is None:
                raise ValueError(f"{name}: got {len(split)} tagged sentences, expected at least one")
        self.tag_names = list(tag_names)
        self.scheme = scheme
        self.metric_names = ("loss", "accuracy", "chunk_f1") if scheme else ("loss", "accuracy")
        self.selection = ("chunk_f1", "max") if scheme else ("accuracy", "max")
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self._batches = _SequenceBatches(train.lengths(), batch_size, seed)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return self._batches.count

    def train_batches(self, epoch: int, start: int):
        for index in self._batches.epoch(epoch, start):
            yield self.splits["train"].batch(index)

    def train_step(self, model, batch, carry):
        loss = model.loss(batch["inputs"], batch["tags"], batch["lengths"], batch["features"], batch["chars"])
        model.backward()
        return loss, int(batch["lengths"].sum()), None

    def evaluate(self, model, split: str) -> dict:
        sentences = self.splits[split]
        total, tokens = 0.0, 0
        with evaluation_mode(model):
            for index in _in_order(sentences.lengths(), self.batch_size):
                b = sentences.batch(index)
                n = int(b["lengths"].sum())
                total += model.loss(b["inputs"], b["tags"], b["lengths"], b["features"], b["chars"]) * n
                tokens += n
        predicted = predict_tags(model, sentences, self.batch_size)
        out = {"loss": total / tokens,
               "accuracy": metrics.accuracy(np.concatenate(sentences.tags), np.concatenate(predicted))}
        if self.scheme:
            names = np.array(self.tag_names)
            out["chunk_f1"] = metrics.chunk_f1([names[t].tolist() for t in sentences.tags],
                                               [names[p].tolist() for p in predicted], self.scheme)["f1"]
        return out

    def carry_to_json(self, carry):
        return None

    def carry_from_json(self, obj):
        return None


# ----- forecasting ------------------------------------------------------------------------------------------
def baseline_forecasts(values: np.ndarray, origins: np.ndarray, horizon: int,
                       season: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Forecasts (horizon, len(origins)) made at each origin o (the first step not yet seen) from values before
    it: naive (the last value, values[o - 1], for every step) and seasonal naive (step h gets the value one or
    more whole seasons earlier, values[o + h - season * ceil((h + 1) / season)]; None without a season)."""
    naive = np.repeat(values[origins - 1][None], horizon, axis=0)
    if season is None:
        return naive, None
    h = np.arange(horizon)[:, None]
    index = origins[None] + h - season * ((h + season) // season)
    if (index < 0).any():
        raise ValueError(f"season: got {season}, expected a season short enough that a whole season of history "
                         f"precedes every forecast (the first origin is {int(origins.min())})")
    return naive, values[index]


class ForecastTask:
    """Forecasting one series: the values are split in time into train, validation and test parts (the last
    ``val_fraction`` and ``test_fraction``); a window of ``window`` values forecasts the next ``horizon`` ones.
    Training windows lie wholly in the training part; a validation or test forecast starts at every step of its
    part that leaves room for ``horizon`` targets there, its history reaching back into earlier parts as a
    forecaster's would. Call ``model.fit_scaler(task.train_values)`` before training, so that the scaling sees
    the training part only. Metrics are in the series' units, next to the naive and seasonal-naive baselines on
    the same targets."""

    metric_names = ("loss", "rmse", "mae", "naive_rmse", "naive_mae", "seasonal_naive_rmse", "seasonal_naive_mae")
    selection = ("loss", "min")

    def __init__(self, values, window: int, horizon: int = 1, batch_size: int = 32, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, season: int | None = None, seed: int = 0):
        self.values = _checks.as_float_array(values, "values", np.float64, ndim=1)
        _checks.check_finite(self.values, "values")
        self.window = _checks.positive_int(window, "window")
        self.horizon = _checks.positive_int(horizon, "horizon")
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.season = None if season is None else _checks.positive_int(season, "season")
        val_fraction = _checks.real(val_fraction, "val_fraction", 0.0, 1.0, low_open=True, high_open=True)
        test_fraction = _checks.real(test_fraction, "test_fraction", 0.0, 1.0, high_open=True)
        n = len(self.values)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        self.bounds = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test)}
        if n_test:
            self.bounds["test"] = (n - n_test, n)
        self.origins = {}
        for split, (lo, hi) in self.bounds.items():
            first = lo + self.window if split == "train" else max(lo, self.window)
            origins = np.arange(first, hi - self.horizon + 1)
            if origins.size == 0:
                raise ValueError(f"window, horizon: {n} values split {self._sizes()} leave no {split} forecast "
                                 f"with window={self.window} and horizon={self.horizon}, expected a shorter window or "
                                 "horizon, or a longer series")
            self.origins[split] = origins
        if self.season is not None:
            baseline_forecasts(self.values, self.origins["val"], self.horizon, self.season)
        self._rng_seed = seed

    def _sizes(self) -> str:
        return "/".join(str(hi - lo) for lo, hi in self.bounds.values())

    @property
    def train_values(self) -> np.ndarray:
        lo, hi = self.bounds["train"]
        return self.values[lo:hi]

    def has_split(self, split: str) -> bool:
        return split in self.origins

    def windows(self, split: str, origins: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """History windows (window, n) and targets (horizon, n) for the split's origins (or the given ones)."""
        origins = self.origins[split] if origins is None else origins
        history = self.values[origins[None] + np.arange(-self.window, 0)[:, None]]
        targets = self.values[origins[None] + np.arange(self.horizon)[:, None]]
        return history, targets

    def num_train_batches(self) -> int:
        return math.ceil(len(self.origins["train"]) / self.batch_size)

    def train_batches(self, epoch: int, start: int):
        order = np.random.default_rng(self._rng_seed + epoch).permutation(self.origins["train"])
        for i in range(start * self.batch_size, len(order), self.batch_size):
            yield self.windows("train", order[i:i + self.batch_size])

    def train_step(self, model, batch, carry):
        history, targets = batch
        loss = model.loss(history, targets)
        model.backward()
        return loss, targets.shape[1], None

    def evaluate(self, model, split: str) -> dict:
        history, targets = self.windows(split)
        with evaluation_mode(model):
            loss = model.loss(history, targets)
            predicted = model.forward(history)[:, :, 0]
        naive, seasonal = baseline_forecasts(self.values, self.origins[split], self.horizon, self.season)
        return {"loss": loss, "rmse": metrics.rmse(targets, predicted), "mae": metrics.mae(targets, predicted),
                "naive_rmse": metrics.rmse(targets, naive), "naive_mae": metrics.mae(targets, naive),
                "seasonal_naive_rmse": None if seasonal is None else metrics.rmse(targets, seasonal),
                "seasonal_naive_mae": None if seasonal is None else metrics.mae(targets, seasonal)}

    def carry_to_json(self, carry):
        return None

    def carry_from_json(self, obj):
        return None
