"""Sequence tagging: one tag per token of CoNLL column files (chunking, named entities, part of speech).

A file has one token per line, whitespace-separated columns (word, optional feature columns such as the part
of speech, tag), a blank line between sentences. With chunk tags (IOB1, IOB2, IOBES) the metric is conlleval's
chunk F1, which also picks the best checkpoint; otherwise per-token accuracy. Gold tags that the model never
saw count as errors (with a warning naming them), as conlleval counts them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _checks, data, distributed, metrics
from ..seqmodels import SequenceTagger, evaluation_mode
from .common import (
    BIDIRECTIONAL,
    MIN_COUNT,
    PAD,
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
    one_file,
    option,
    sequences_of,
    shard_of_indices,
    targets_of,
    unpack,
)

NAME = "tag"
HELP = "tag: one tag per token (CoNLL column files)"
MODEL = SequenceTagger
DEFAULTS = {
    "cell": "lstm",
    "embed": 100,
    "hidden": 128,
    "layers": 1,
    "dropout": 0.5,
    "batch_size": 32,
    "epochs": 20,
    "bidirectional": True,
    "min_count": 2,
    "word_column": 0,
    "tag_column": -1,
    "feature_columns": [],
    "char_features": False,
    "crf": False,
}
OPTIONS: tuple[Option, ...] = (
    BIDIRECTIONAL,
    MIN_COUNT,
    option("--word-column", type=int, help="column of the words (default 0)"),
    option("--tag-column", type=int, help="column of the tags (default -1, the last)"),
    option(
        "--feature-columns",
        type=int,
        nargs="+",
        help="categorical columns embedded next to the word (e.g. part of speech)",
    ),
    option(
        "--char-features", action="store_true", help="add a character BiLSTM over each word (helps with unknown words)"
    ),
    option("--crf", action="store_true", help="CRF output layer (Viterbi decoding)"),
)
MAX_WORD_CHARS = 32  # characters of a word the character features read; longer words are cut


@dataclass
class Settings:
    VERSION = 1
    word_column: int = 0
    tag_column: int = -1
    feature_columns: list = field(default_factory=list)
    encoding: str = "utf-8"
    vocab: dict | None = None  # TaggingVocabulary.to_dict(); None for a model trained on ids by fit()


_DIGIT = re.compile(r"\d")


def normalize_word(word: str) -> str:
    """A word as the tagger's word embedding sees it: lower case with every digit 0, so that rarer forms share
    statistics (the character features still see the word as written)."""
    return _DIGIT.sub("0", word.lower())


@dataclass
class EncodedSentences:
    """Sentences as ids: per sentence ``words`` (L,), ``features`` (L, K), ``chars`` (L, W) (0 = padding) and
    ``tags`` (L,); ``features``, ``chars`` and ``tags`` are None when not used. ``gold`` keeps the tags as
    written when some are ``UNSEEN`` (tags the model never saw), for chunk scores."""

    words: list[np.ndarray]
    features: list[np.ndarray] | None
    chars: list[np.ndarray] | None
    tags: list[np.ndarray] | None
    gold: list[list[str]] | None = None

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
                chars[: len(self.chars[i]), b, : self.chars[i].shape[1]] = self.chars[i]
            out["chars"] = chars
        return out

    def subset(self, index) -> EncodedSentences:
        pick = lambda items: None if items is None else [items[i] for i in index]  # noqa: E731
        return EncodedSentences(
            pick(self.words), pick(self.features), pick(self.chars), pick(self.tags), pick(self.gold)
        )


@dataclass
class TaggingVocabulary:
    """Words (normalised, see ``normalize_word``), one vocabulary per feature column, characters (with
    ``char_features``; id 0 is padding) and tags of a tagging task."""

    words: Vocabulary
    features: list[Vocabulary]
    chars: Vocabulary | None
    tags: Vocabulary

    @classmethod
    def fit(
        cls, sentences: data.TaggedSentences, min_count: int = 1, char_features: bool = False, extra_tags=()
    ) -> TaggingVocabulary:
        """From training sentences; ``extra_tags`` (e.g. the tags of validation and test files) join the tag set
        so that evaluation never meets a tag the model cannot output."""
        if sentences.tags is None:
            raise ValueError("sentences: got untagged sentences, expected tags to train on")
        words = Vocabulary.fit(([normalize_word(w) for w in s] for s in sentences.words), min_count, (UNK,), UNK)
        K = len(sentences.features[0][0]) if sentences.features and sentences.features[0] else 0
        features = [
            Vocabulary.fit(([tok[k] for tok in s] for s in sentences.features), 1, (UNK,), UNK) for k in range(K)
        ]
        chars = Vocabulary.fit((c for s in sentences.words for c in s), 1, (PAD, UNK), UNK) if char_features else None
        tags = Vocabulary(sorted({t for s in sentences.tags for t in s} | set(extra_tags)))
        if len(tags) < 2:
            raise ValueError(f"tags: got only {tags.tokens!r}, expected at least 2 distinct tags")
        return cls(words, features, chars, tags)

    @property
    def chunk_scheme(self) -> str | None:
        return chunk_scheme(self.tags.tokens)

    def _chars(self, sentence: list[str]) -> np.ndarray:
        width = min(MAX_WORD_CHARS, max(len(w) for w in sentence))
        out = np.zeros((len(sentence), width), dtype=np.int64)
        for j, word in enumerate(sentence):
            ids = self.chars.encode(word[:width], "chars")
            out[j, : len(ids)] = ids
        return out

    def encode(self, sentences: data.TaggedSentences, with_tags: bool = True, gold: bool = False) -> EncodedSentences:
        """Ids of ``sentences``; with ``gold`` (evaluation data), tags the model never saw become ``UNSEEN``
        instead of an error."""
        words = [self.words.encode([normalize_word(w) for w in s], "words") for s in sentences.words]
        features = None
        if self.features:
            if not sentences.features or len(sentences.features[0][0]) != len(self.features):
                got = len(sentences.features[0][0]) if sentences.features else 0
                raise ValueError(
                    f"feature_columns: got {got} feature column(s), expected {len(self.features)} as in training"
                )
            features = [
                np.stack(
                    [v.encode([tok[k] for tok in s], f"feature column {k}") for k, v in enumerate(self.features)],
                    axis=1,
                )
                for s in sentences.features
            ]
        chars = [self._chars(s) for s in sentences.words] if self.chars is not None else None
        tags = names = None
        if with_tags:
            if sentences.tags is None:
                raise ValueError("sentences: got untagged sentences, expected a tag column to evaluate against")
            if gold:
                flat = self.tags.encode_gold([t for s in sentences.tags for t in s], "tags")
                tags = np.split(flat, np.cumsum([len(s) for s in sentences.tags])[:-1])
                names = [list(s) for s in sentences.tags] if (flat == UNSEEN).any() else None
            else:
                tags = [self.tags.encode(s, "tags") for s in sentences.tags]
        return EncodedSentences(words, features, chars, tags, names)

    def to_dict(self) -> dict:
        return {
            "words": self.words.to_dict(),
            "features": [v.to_dict() for v in self.features],
            "chars": None if self.chars is None else self.chars.to_dict(),
            "tags": self.tags.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TaggingVocabulary:
        return cls(
            Vocabulary.from_dict(d["words"]),
            [Vocabulary.from_dict(v) for v in d["features"]],
            None if d["chars"] is None else Vocabulary.from_dict(d["chars"]),
            Vocabulary.from_dict(d["tags"]),
        )


def chunk_scheme(tag_names) -> str | None:
    """'iobes', 'iob2' (also right for IOB1) or None when the tags are not chunk tags."""
    if not tag_names:
        return None
    prefixes = {tag.partition("-")[0] for tag in tag_names if tag != "O"}
    if not all("-" in tag for tag in tag_names if tag != "O") or not prefixes:
        return None
    if prefixes <= {"B", "I"}:
        return "iob2"
    return "iobes" if prefixes <= {"B", "I", "E", "S"} else None


def predict_tags(model, sentences: EncodedSentences, batch_size: int = 64) -> list[np.ndarray]:
    """The tag ids a SequenceTagger predicts for each sentence, in their order."""
    out: list[np.ndarray] = [None] * len(sentences)
    batches = in_order(sentences.lengths(), batch_size)
    predicted = []
    # Under MPI each rank tags its share of the batches, and every rank gets them all.
    for index in batches[distributed.share(len(batches))]:
        b = sentences.batch(index)
        tags = model.predict(b["inputs"], b["lengths"], b["features"], b["chars"])
        predicted += [(i, tags[: b["lengths"][k], k]) for k, i in enumerate(index)]
    for i, tags in (pair for part in distributed.allgather(predicted) for pair in part):
        out[i] = tags
    return out


def scores(model, sentences: EncodedSentences, tag_names, batch_size: int) -> dict:
    """Loss, per-token accuracy and (for chunk tags) chunk F1. ``UNSEEN`` gold tags are errors; the loss, which
    the model cannot give for them, covers the sentences without one."""
    total, tokens = 0.0, 0
    with evaluation_mode(model):
        known = [i for i, t in enumerate(sentences.tags) if not (t == UNSEEN).any()]
        scored = sentences.subset(known) if len(known) < len(sentences) else sentences
        batches = in_order(scored.lengths(), batch_size) if len(scored) else []
        for index in batches[distributed.share(len(batches))]:
            b = scored.batch(index)
            n = int(b["lengths"].sum())
            total += model.loss(b["inputs"], b["tags"], b["lengths"], b["features"], b["chars"]) * n
            tokens += n
    total, tokens = distributed.sum_values([total, tokens])
    predicted = predict_tags(model, sentences, batch_size)
    out = {
        "loss": total / tokens if tokens else float("nan"),
        "accuracy": metrics.accuracy(np.concatenate(sentences.tags), np.concatenate(predicted)),
    }
    scheme = chunk_scheme(tag_names)
    if scheme:
        names = np.array(tag_names)
        gold = sentences.gold or [names[t].tolist() for t in sentences.tags]
        out["chunk_f1"] = metrics.chunk_f1(gold, [names[p].tolist() for p in predicted], scheme)["f1"]
    return out


class TaggingTask(NoCarry):
    """One tag per token over EncodedSentences splits. Reports per-token accuracy and, when the tags are chunk
    tags (``tag_names`` with a ``scheme``), conlleval's chunk F1, by which the best checkpoint is chosen
    (otherwise by accuracy)."""

    def __init__(
        self,
        train: EncodedSentences,
        val: EncodedSentences | None,
        tag_names,
        batch_size: int = 32,
        test: EncodedSentences | None = None,
        scheme: str | None = None,
        seed: int = 0,
    ):
        self.splits = {"train": train}
        for name, split in (("val", val), ("test", test)):
            if split is not None:
                self.splits[name] = split
        for name, split in self.splits.items():
            if len(split) == 0 or split.tags is None:
                raise ValueError(f"{name}: got {len(split)} tagged sentences, expected at least one")
        self.tag_names = None if tag_names is None else list(tag_names)
        self.scheme = scheme if scheme is not None else chunk_scheme(self.tag_names)
        self.metric_names = ("loss", "accuracy", "chunk_f1") if self.scheme else ("loss", "accuracy")
        self.selection = ("chunk_f1", "max") if self.scheme else ("accuracy", "max")
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self._batches = SequenceBatches(train.lengths(), batch_size, seed)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return self._batches.count

    def train_batches(self, epoch: int, start: int):
        return self._batches.epoch(epoch, start)

    shard = staticmethod(shard_of_indices)

    def train_step(self, model, batch, carry):
        batch = self.splits["train"].batch(batch)
        loss = model.loss(batch["inputs"], batch["tags"], batch["lengths"], batch["features"], batch["chars"])
        model.backward()
        return loss, int(batch["lengths"].sum()), None

    def evaluate(self, model, split: str) -> dict:
        return scores(model, self.splits[split], self.tag_names if self.scheme else None, self.batch_size)


# ----- files ------------------------------------------------------------------------------------------------
def read_file(path, settings: Settings, encoding_name: str, tagged: bool = True) -> data.TaggedSentences:
    return data.read_conll(
        path, settings.word_column, settings.tag_column if tagged else None, settings.feature_columns, encoding_name
    )


def _subset(sentences: data.TaggedSentences, index) -> data.TaggedSentences:
    pick = lambda items: None if items is None else [items[i] for i in index]  # noqa: E731
    return data.TaggedSentences(
        pick(sentences.words), pick(sentences.tags), pick(sentences.features), pick(sentences.lines)
    )


def prepare(args) -> Prepared:
    settings = Settings(args.word_column, args.tag_column, list(args.feature_columns), args.encoding)
    read = lambda paths, name: read_file(one_file(paths, name), settings, args.encoding)  # noqa: E731
    sentences = read(args.data, "--data")
    kept, held_val, held_test = cli_parts(len(sentences), args, "sentences")
    train = _subset(sentences, kept)
    val = read(args.val_data, "--val-data") if args.val_data else _subset(sentences, held_val)
    test = read(args.test_data, "--test-data") if args.test_data else None
    test = _subset(sentences, held_test) if held_test is not None else test
    extra_tags = {t for s in val.tags + (test.tags if test else []) for t in s}
    vocab = TaggingVocabulary.fit(train, args.min_count, args.char_features, extra_tags)
    settings.vocab = vocab.to_dict()
    task = TaggingTask(
        vocab.encode(train),
        vocab.encode(val),
        vocab.tags.tokens,
        args.batch_size,
        None if test is None else vocab.encode(test),
        vocab.chunk_scheme,
        seed=args.seed,
    )
    model = SequenceTagger(
        len(vocab.tags),
        vocab_size=len(vocab.words),
        embed_dim=args.embed,
        hidden_size=args.hidden,
        num_layers=args.layers,
        cell=args.cell,
        bidirectional=args.bidirectional,
        feature_vocab_sizes=[len(v) for v in vocab.features],
        char_features=args.char_features,
        char_vocab_size=len(vocab.chars) if vocab.chars is not None else None,
        crf=args.crf,
        dropout=args.dropout,
        seed=args.seed,
        tag_names=vocab.tags.tokens,
    )
    tokens = int(sum(len(s) for s in train.words))
    summary = (
        f"{len(train):,} training sentences ({tokens:,} tokens), {len(vocab.words):,} words, {len(vocab.tags)} tags"
    )
    return Prepared(model, task, settings, None, summary, Path(one_file(args.data, "--data")).stem)


def _vocabulary(checkpoint, settings: Settings) -> TaggingVocabulary:
    if settings.vocab is None:
        raise ValueError(
            f"checkpoint: {checkpoint.path} was trained on ids in Python and holds no vocabulary to "
            "read CoNLL files with; use model.evaluate and model.predict on ids"
        )
    return TaggingVocabulary.from_dict(settings.vocab)


def evaluate_files(checkpoint, settings: Settings, args) -> dict:
    vocab = _vocabulary(checkpoint, settings)
    sentences = read_file(one_file(args.data, "--data"), settings, encoding(args, settings))
    result = scores(checkpoint.model, vocab.encode(sentences, gold=True), vocab.tags.tokens, args.batch_size or 64)
    return {"accuracy": result["accuracy"], "chunk_f1": result.get("chunk_f1"), "loss": result["loss"]}


def predict_files(checkpoint, settings: Settings, args):
    vocab = _vocabulary(checkpoint, settings)
    encoding_name = encoding(args, settings)
    sentences = read_file(args.data, settings, encoding_name, tagged=False)
    predicted = predict_tags(checkpoint.model, vocab.encode(sentences, with_tags=False), args.batch_size)
    tags = [vocab.tags.decode(p) for p in predicted]
    return lambda path: data.write_conll(path, sentences, tags, encoding_name)


def result_line(result: dict) -> str:
    return " ".join(f"{k} {result[k]:.4f}" for k in ("accuracy", "chunk_f1") if result.get(k) is not None)


# ----- in memory --------------------------------------------------------------------------------------------
def _examples(model, x, y, lengths, name: str) -> EncodedSentences:
    x, y = unpack(x, y)
    words = sequences_of(x, lengths, name)
    tags = [
        _checks.as_int_array(t, f"{name} tags[{i}]", ndim=1)
        for i, t in enumerate(targets_of(y, len(words), "y" if name == "x" else f"{name} tags"))
    ]
    for i, (w, t) in enumerate(zip(words, tags)):
        if len(t) != len(w):
            raise ValueError(f"y[{i}]: got {len(t)} tags for a sequence of {len(w)} steps, expected one per step")
        _checks.check_range(t, f"y[{i}]", 0, model.num_tags - 1)
    return EncodedSentences(words, None, None, tags)


def _tag_names(model, options: dict):
    names = options.pop("tag_names", None)
    if names is None:
        return model.tag_names
    names = [str(n) for n in names]
    if len(names) != model.num_tags:
        raise ValueError(f"tag_names: got {len(names)} names, expected {model.num_tags}, one per tag id")
    return names


def fit_task(model, x, y, validation, batch_size: int, seed: int, options: dict):
    """(task, settings, tokenizer) for ``SequenceTagger.fit``: ``x`` sequences of ids or features (or a padded
    array with the option ``lengths``), ``y`` one tag-id array per sequence; ``tag_names`` (saved with the
    model) give chunk F1 for chunk tags."""
    lengths = options.pop("lengths", None)
    model.tag_names = _tag_names(model, options)
    no_options(options, NAME)
    train = _examples(model, x, y, lengths, "x")
    if isinstance(validation, data.SequenceSet):
        val = _examples(model, validation, None, None, "validation_data")
    elif isinstance(validation, tuple):
        val = _examples(
            model, validation[0], validation[1], validation[2] if len(validation) > 2 else None, "validation_data"
        )
    elif isinstance(validation, float):
        kept, held = held_out(list(range(len(train))), list(range(len(train))), validation, seed)
        train, val = train.subset(kept[0]), train.subset(held[0])
    else:
        val = None
    task = TaggingTask(train, val, model.tag_names, batch_size, seed=seed)
    return task, Settings(), None


def evaluate_arrays(model, x, y, options: dict) -> dict:
    """``SequenceTagger.evaluate``: accuracy, chunk_f1 (None unless the tag names are chunk tags) and loss."""
    lengths = options.pop("lengths", None)
    batch_size = options.pop("batch_size", 64)
    names = _tag_names(model, options)
    no_options(options, NAME)
    result = scores(model, _examples(model, x, y, lengths, "x"), names, batch_size)
    return {"accuracy": result["accuracy"], "chunk_f1": result.get("chunk_f1"), "loss": result["loss"]}
