"""Sequence classification: one label per text (or per sequence of ids or feature vectors).

Files: ``label<TAB>text`` lines (``--format tsv``) or one file per class named after it (``--format files``).
The best checkpoint is the one with the highest validation accuracy. Gold labels that the model never saw count
as errors (with a warning naming them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _checks, data, distributed, metrics
from ..models import _softmax_cross_entropy
from ..seqmodels import SequenceClassifier, evaluation_mode
from .common import (
    BIDIRECTIONAL,
    MIN_COUNT,
    POOLING,
    UNK,
    UNSEEN,
    NoCarry,
    Option,
    Prepared,
    SequenceBatches,
    Vocabulary,
    cli_parts,
    encoding,
    held_out,
    in_order,
    no_options,
    sequences_of,
    shard_of_indices,
    targets_of,
    unpack,
)

NAME = "classify"
HELP = "classify: one label per text (label<TAB>text lines, or one file per class)"
MODEL = SequenceClassifier
DEFAULTS = {
    "cell": "lstm",
    "embed": 100,
    "hidden": 128,
    "layers": 1,
    "dropout": 0.5,
    "batch_size": 32,
    "epochs": 10,
    "format": "tsv",
    "pooling": "last",
    "bidirectional": False,
    "min_count": 2,
}
FORMATS = ("tsv", "files")  # label<TAB>text lines; one file per class, named after the class
OPTIONS: tuple[Option, ...] = (
    POOLING,
    BIDIRECTIONAL,
    MIN_COUNT,
)


@dataclass
class Settings:
    VERSION = 1
    format: str = "tsv"
    encoding: str = "utf-8"
    vocab: dict | None = None  # TextVocabulary.to_dict(); None for a model trained on ids by fit()


_WORD = re.compile(r"\w+(?:['\-]\w+)*|[^\w\s]")


def text_words(text: str) -> list[str]:
    """Lower-cased words of a text, punctuation marks as words of their own ("Isn't it?" -> isn't, it, ?)."""
    return _WORD.findall(text.lower())


@dataclass
class TextVocabulary:
    """Words and labels of a classification task. An example without words reads as one unknown word."""

    words: Vocabulary
    labels: Vocabulary

    @classmethod
    def fit(cls, texts, labels, min_count: int = 1) -> TextVocabulary:
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
    def from_dict(cls, d: dict) -> TextVocabulary:
        return cls(Vocabulary.from_dict(d["words"]), Vocabulary.from_dict(d["labels"]))


def predict_labels(model, sequences, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(class ids (N,), logits (N, C)) of a SequenceClassifier for sequences of ids (T_i,) or features
    (T_i, input_size), in their order."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    batches = in_order(lengths, batch_size)
    scored = []
    with evaluation_mode(model):
        # Under MPI each rank scores its share of the batches, and every rank gets them all.
        for index in batches[distributed.share(len(batches))]:
            padded, lens = data.pad_batch([sequences[i] for i in index])
            scored.append((index, model.forward(padded, lens)))
    logits = None
    for index, out in (pair for part in distributed.allgather(scored) for pair in part):
        if logits is None:
            logits = np.empty((len(sequences), out.shape[1]), dtype=model.dtype)
        logits[index] = out
    return logits.argmax(axis=1).astype(np.int64), logits


def _check_split(split, name: str):
    if split is None:
        return None
    sequences, targets = split
    if len(sequences) == 0:
        raise ValueError(f"{name}: got no examples, expected at least one")
    if len(targets) != len(sequences):
        raise ValueError(f"{name}: got {len(sequences)} sequences and {len(targets)} targets, expected as many")
    return list(sequences), np.asarray(targets, dtype=np.int64)


def scores(model, sequences, labels: np.ndarray, batch_size: int) -> dict:
    """Loss, accuracy and macro F1 of gold ``labels``; an ``UNSEEN`` label is a class of its own that the model
    never predicts (an error), and is left out of the loss, which the model cannot give for it."""
    predicted, logits = predict_labels(model, sequences, batch_size)
    loss, _, _ = _softmax_cross_entropy(logits, labels, ignore_index=UNSEEN)
    gold = np.where(labels == UNSEEN, model.num_classes, labels)
    _, _, macro_f1 = metrics.precision_recall_f1(gold, predicted)
    return {"loss": loss, "accuracy": metrics.accuracy(gold, predicted), "macro_f1": float(macro_f1)}


class ClassificationTask(NoCarry):
    """One label per sequence. Each split is ``(sequences, labels)``: a list of id arrays (T_i,) (or feature
    arrays (T_i, input_size)) and their class ids. The best checkpoint is the one with the highest validation
    accuracy."""

    metric_names = ("loss", "accuracy", "macro_f1")
    selection = ("accuracy", "max")

    def __init__(self, train, val, batch_size: int = 32, test=None, seed: int = 0):
        self.splits = {"train": _check_split(train, "train")}
        for name, split in (("val", val), ("test", test)):
            if split is not None:
                self.splits[name] = _check_split(split, name)
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self._batches = SequenceBatches(np.array([len(s) for s in self.splits["train"][0]]), batch_size, seed)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return self._batches.count

    def train_batches(self, epoch: int, start: int):
        return self._batches.epoch(epoch, start)

    shard = staticmethod(shard_of_indices)

    def train_step(self, model, batch, carry):
        sequences, labels = self.splits["train"]
        inputs, lengths = data.pad_batch([sequences[i] for i in batch])
        labels = labels[batch]
        loss = model.loss(inputs, labels, lengths)
        model.backward()
        return loss, len(labels), None

    def evaluate(self, model, split: str) -> dict:
        sequences, labels = self.splits[split]
        return scores(model, sequences, labels, self.batch_size)


# ----- files ------------------------------------------------------------------------------------------------
def read_files(paths, fmt: str, encoding_name: str):
    if fmt == "files":
        return data.read_class_files(paths, encoding_name)
    texts, labels = [], []
    for path in paths:
        more_texts, more_labels = data.read_labelled_lines(path, encoding_name)
        texts += more_texts
        labels += more_labels
    return texts, labels


def prepare(args) -> Prepared:
    texts, labels = read_files(args.data, args.format, args.encoding)
    part = lambda index: ([texts[i] for i in index], [labels[i] for i in index])  # noqa: E731
    kept, held_val, held_test = cli_parts(len(texts), args, "examples")
    train = part(kept)
    val = read_files(args.val_data, args.format, args.encoding) if args.val_data else part(held_val)
    test = read_files(args.test_data, args.format, args.encoding) if args.test_data else None
    test = part(held_test) if held_test is not None else test
    vocab = TextVocabulary.fit(train[0], train[1] + val[1] + (test[1] if test else []), args.min_count)
    encode = lambda split: (vocab.encode_texts(split[0]), vocab.encode_labels(split[1]))  # noqa: E731
    task = ClassificationTask(
        encode(train), encode(val), args.batch_size, None if test is None else encode(test), seed=args.seed
    )
    model = SequenceClassifier(
        len(vocab.labels),
        vocab_size=len(vocab.words),
        embed_dim=args.embed,
        hidden_size=args.hidden,
        num_layers=args.layers,
        cell=args.cell,
        bidirectional=args.bidirectional,
        pooling=args.pooling,
        dropout=args.dropout,
        seed=args.seed,
    )
    summary = f"{len(train[0]):,} training texts, {len(vocab.words):,} words, {len(vocab.labels)} classes"
    return Prepared(
        model, task, Settings(args.format, args.encoding, vocab.to_dict()), None, summary, Path(args.data[0]).stem
    )


def _vocabulary(checkpoint, settings: Settings) -> TextVocabulary:
    if settings.vocab is None:
        raise ValueError(
            f"checkpoint: {checkpoint.path} was trained on ids in Python and holds no vocabulary to "
            "read text files with; use model.evaluate and model.predict on ids"
        )
    return TextVocabulary.from_dict(settings.vocab)


def evaluate_files(checkpoint, settings: Settings, args) -> dict:
    vocab = _vocabulary(checkpoint, settings)
    texts, labels = read_files(args.data, settings.format, encoding(args, settings))
    gold = vocab.labels.encode_gold(labels, "--data")
    return scores(checkpoint.model, vocab.encode_texts(texts), gold, args.batch_size or 64)


def predict_files(checkpoint, settings: Settings, args):
    from .. import text

    vocab = _vocabulary(checkpoint, settings)
    encoding_name = encoding(args, settings)
    lines = text.read_text(args.data, encoding_name).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    present = [i for i, line in enumerate(lines) if line.strip()]
    texts = [lines[i].partition("\t")[2] if "\t" in lines[i] else lines[i] for i in present]
    if not texts:
        raise ValueError(f"--data: {args.data} has no text lines, expected one text per line")
    predicted, _ = predict_labels(checkpoint.model, vocab.encode_texts(texts), args.batch_size)
    out = [""] * len(lines)
    for i, label in zip(present, vocab.labels.decode(predicted)):
        out[i] = label

    def write(path):
        with open(path, "w", encoding=encoding_name) as f:
            f.write("\n".join(out) + "\n")

    return write


def result_line(result: dict) -> str:
    return " ".join(f"{k} {result[k]:.4f}" for k in ("accuracy", "macro_f1") if result.get(k) is not None)


# ----- in memory --------------------------------------------------------------------------------------------
def _examples(x, y, lengths, name: str):
    x, y = unpack(x, y)
    sequences = sequences_of(x, lengths, name)
    labels = targets_of(y, len(sequences), "y" if name == "x" else f"{name} labels")
    return sequences, np.asarray(_checks.as_int_array(np.asarray(labels), "y", ndim=1))


def fit_task(model, x, y, validation, batch_size: int, seed: int, options: dict):
    """(task, settings, tokenizer) for ``SequenceClassifier.fit``: ``x`` sequences of ids or features (or a
    padded array with the option ``lengths``), ``y`` one class id per sequence."""
    lengths = options.pop("lengths", None)
    no_options(options, NAME)
    sequences, labels = _examples(x, y, lengths, "x")
    if isinstance(validation, data.SequenceSet):
        validation = _examples(validation, None, None, "validation_data")
    elif isinstance(validation, tuple):
        validation = _examples(
            validation[0], validation[1], validation[2] if len(validation) > 2 else None, "validation_data"
        )
    (train_x, train_y), val = held_out(sequences, list(labels), validation, seed)
    task = ClassificationTask((train_x, train_y), val, batch_size, seed=seed)
    return task, Settings(), None


def evaluate_arrays(model, x, y, options: dict) -> dict:
    """``SequenceClassifier.evaluate``: accuracy, macro_f1 and loss of labels ``y``."""
    lengths = options.pop("lengths", None)
    batch_size = options.pop("batch_size", 64)
    no_options(options, NAME)
    sequences, labels = _examples(x, y, lengths, "x")
    _checks.check_range(labels, "y", 0, model.num_classes - 1)
    return scores(model, sequences, labels, batch_size)
