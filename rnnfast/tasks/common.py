"""What several tasks share: command-line option specs and argument types, versioned settings, vocabularies,
batching of variable-length sequences, held-out parts, and the conversion of in-memory data for ``fit``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections import Counter
from typing import Any, NamedTuple

import numpy as np

from .. import _checks, data, distributed


# ----- command-line options ---------------------------------------------------------------------------------
class Option(NamedTuple):
    """One command-line option of a task: argparse's flags and keyword arguments. Its default must be None (the
    task's DEFAULTS fill it in), so the CLI can tell an option given for the wrong task."""

    flags: tuple
    kwargs: dict

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def option(*flags, **kwargs) -> Option:
    kwargs.setdefault("default", None)
    return Option(flags, kwargs)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 1")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"got {value}, expected a number in (0, 1)")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"got {value}, expected a number in [0, 1)")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"got {text}, expected a finite number > 0")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"got {text}, expected a finite number >= 0")
    return value


# Options that several task modules read, declared once.
POOLING = option(
    "--pooling",
    choices=("last", "mean", "max"),
    help="how a sequence's steps become one vector (default last; mean for --format ts, npz, wav)",
)
BIDIRECTIONAL = option(
    "--bidirectional",
    action=argparse.BooleanOptionalAction,
    help="read both ways (default: no for classify, yes for tag)",
)
MIN_COUNT = option(
    "--min-count", type=positive_int, help="classify, tag: words seen fewer times in training are unknown (default 2)"
)


class Prepared(NamedTuple):
    """What a task module builds for ``rnnfast train``."""

    model: Any
    task: Any
    settings: Any
    tokenizer: Any
    summary: str
    name: str  # the default output directory is runs/<name>


def add_weight_dtype_option(parser, choices=("float32", "int8"), extra_help: str = "") -> None:
    parser.add_argument(
        "--weight-dtype",
        choices=choices,
        help="int8: weight matrices quantized to int8 (one scale per row) for inference, about a quarter of the "
        "bytes; " + extra_help + "default: the checkpoint's own",
    )


def in_weight_dtype(checkpoint, weight_dtype):
    """The checkpoint with its model quantized when ``--weight-dtype`` asks for int8 (None keeps it as saved)."""
    own = checkpoint.model.weight_dtype
    if weight_dtype is None or weight_dtype == own:
        return checkpoint
    if own != "float32" or weight_dtype == "float32":
        raise ValueError(f"--weight-dtype: got {weight_dtype}, the checkpoint's weights are {own}")
    checkpoint.model = checkpoint.model.quantize(weight_dtype)
    return checkpoint


def one_file(paths, option_name: str):
    if paths is None:
        return None
    if isinstance(paths, str):
        return paths
    if len(paths) != 1:
        raise ValueError(f"{option_name}: got {len(paths)} files, expected one")
    return paths[0]


def encoding(args, settings) -> str:
    return getattr(args, "encoding", None) or settings.encoding


def note(message: str) -> None:
    """A line for the user on stderr; under MPI, rank 0's alone."""
    if distributed.rank() == 0:
        print(f"rnnfast: {message}", file=sys.stderr)


# ----- settings ---------------------------------------------------------------------------------------------
def settings_to_dict(task_name: str, settings) -> dict:
    """A task's settings dataclass as the JSON saved in checkpoints: its fields, the task and the version."""
    return {"task": task_name, "version": settings.VERSION, **dataclasses.asdict(settings)}


def settings_from_dict(cls, d: dict, where: str):
    """The settings dataclass ``cls`` from a checkpoint's JSON. Checkpoints written before settings had versions
    (version 0) hold the same keys; a version newer than this rnnfast knows is refused by name."""
    version = d.get("version", 0)
    if not isinstance(version, int) or version > cls.VERSION:
        raise ValueError(
            f"checkpoint: {where} holds {d.get('task')} settings version {version!r}, this rnnfast "
            f"reads versions up to {cls.VERSION}; expected a checkpoint of this or an older rnnfast"
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"checkpoint: {where} lacks the task settings {', '.join(missing)}")
    return cls(**{k: v for k, v in d.items() if k in fields})


# ----- vocabularies -----------------------------------------------------------------------------------------
UNK = "<unk>"
PAD = "<pad>"


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
    def fit(cls, sequences, min_count: int = 1, specials=(), unknown: str | None = None) -> Vocabulary:
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
            raise ValueError(
                f"{name}: got {exc.args[0]!r}, which the model was not trained on, expected one of {shown}"
            ) from None

    def encode_gold(self, items, name: str) -> np.ndarray:
        """Gold labels for evaluation: a label the model never saw becomes ``UNSEEN`` (never predicted, so it
        counts as an error, as conlleval counts it), with one warning naming such labels."""
        ids = np.array([self.index.get(item, UNSEEN) for item in items], dtype=np.int64)
        if (ids == UNSEEN).any():
            unseen = sorted({item for item, i in zip(items, ids.tolist()) if i == UNSEEN})
            warnings.warn(
                f"{name}: {int((ids == UNSEEN).sum())} gold item(s) with label(s) the model was not "
                f"trained on ({', '.join(map(repr, unseen[:10]))}); each counts as an error",
                UnseenLabelWarning,
                stacklevel=3,
            )
        return ids

    def decode(self, ids) -> list[str]:
        return [self.tokens[i] for i in np.asarray(ids).tolist()]

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "unknown": self.unknown}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(d["tokens"], d["unknown"])


UNSEEN = -1  # id of a gold label outside the model's label set


class UnseenLabelWarning(UserWarning):
    """Gold labels or tags in evaluation data that the model was never trained on."""


# ----- sequences of examples --------------------------------------------------------------------------------
class SequenceBatches:
    """Training batches of similar-length sequences, a different order each epoch and the same order whenever
    the same epoch is replayed (so resuming mid-epoch continues exactly)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int):
        self.lengths = lengths
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.seed = seed
        self.count = len(data.bucket_batches(lengths, self.batch_size, seed=seed))

    def epoch(self, epoch: int, start: int):
        return data.bucket_batches(self.lengths, self.batch_size, seed=self.seed + epoch)[start:]


def in_order(lengths: np.ndarray, batch_size: int):
    """Evaluation batches: sorted by length, so little padding; callers put results back by index."""
    return data.bucket_batches(lengths, batch_size, shuffle=False)


def shard_of_indices(batch: np.ndarray, rank: int, size: int) -> np.ndarray | None:
    """``Task.shard`` of a task whose batches are indices of examples: a contiguous part of them (None when a
    short batch leaves this rank nothing)."""
    own = batch[distributed.share(len(batch), rank, size)]
    return own if len(own) else None


class NoCarry:
    """For tasks whose batches are independent: nothing is carried from one batch to the next."""

    def carry_to_arrays(self, carry) -> dict:
        return {}

    def carry_from_arrays(self, arrays) -> None:
        return None


def random_parts(count: int, fractions: dict, seed: int, name: str):
    """Indices (train, *held-out parts) of ``count`` items: each held-out part a seeded random sample of its
    fraction (``fractions`` maps an option name to a fraction or None); a part without a fraction is None."""
    sizes = {option: 0 if f is None else int(round(count * f)) for option, f in fractions.items()}
    for option, size in sizes.items():
        if fractions[option] is not None and size < 1:
            raise ValueError(
                f"{option}: {fractions[option]} of {count} {name} is none, expected a larger fraction or more data"
            )
    if sum(sizes.values()) >= count:
        raise ValueError(f"{', '.join(fractions)}: leave no training {name} of {count}")
    order = np.random.default_rng(seed).permutation(count)
    parts, start = [], 0
    for size in sizes.values():
        parts.append(np.sort(order[start : start + size]) if size else None)
        start += size
    return [np.sort(order[start:]), *parts]


def cli_parts(count: int, args, name: str):
    """(train, validation, test) indices of ``count`` examples from --val-fraction (default 0.1 without
    --val-data) and --test-fraction."""
    if args.test_data and args.test_fraction:
        raise ValueError("--test-data, --test-fraction: got both, expected one way to choose the test part")
    return random_parts(
        count,
        {"--val-fraction": None if args.val_data else args.val_fraction or 0.1, "--test-fraction": args.test_fraction},
        args.seed,
        name,
    )


def sequences_of(x, lengths, name: str = "x") -> list[np.ndarray]:
    """In-memory examples as a list of arrays: ``x`` a list of sequences ((T_i,) ids or (T_i, F) features), or a
    padded time-major array (T, N) / (T, N, F) with ``lengths`` (N,) (default: all T steps), the layout that
    the models' ``forward`` takes."""
    if isinstance(x, np.ndarray) or (lengths is not None and not isinstance(x, (list, tuple))):
        arr = _checks._to_numpy(x, name)
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name}: got an array of shape {arr.shape}, expected a padded (T, N) or (T, N, F) "
                "array, or a list of sequences"
            )
        T, N = arr.shape[:2]
        lengths = np.full(N, T, np.int64) if lengths is None else _checks.as_int_array(lengths, "lengths", ndim=1)
        if lengths.shape != (N,):
            raise ValueError(f"lengths: got shape {lengths.shape}, expected ({N},), one per sequence of {name}")
        _checks.check_range(lengths, "lengths", 1, T)
        return [arr[:n, i] for i, n in enumerate(lengths.tolist())]
    if lengths is not None:
        raise ValueError(f"lengths: only for a padded array {name}, got a list of sequences")
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{name}: got {type(x).__name__}, expected a list of sequences or a padded array")
    if len(x) == 0:
        raise ValueError(f"{name}: got no sequences, expected at least one")
    out = []
    for i, seq in enumerate(x):
        arr = _checks._to_numpy(seq, f"{name}[{i}]")
        if arr.ndim not in (1, 2) or len(arr) == 0:
            raise ValueError(f"{name}[{i}]: got shape {arr.shape}, expected a non-empty (T,) or (T, F) sequence")
        out.append(arr)
    return out


def unpack(x, y):
    """``x`` and ``y`` for fit and evaluate: a ``rf.data.SequenceSet`` (what the readers of sequences of numbers
    return) gives its sequences and, unless ``y`` is given, its labels, class names turned into ids in the order
    of its ``classes``."""
    if not isinstance(x, data.SequenceSet):
        return x, y
    if y is None and x.y is not None:
        y = x.y if isinstance(x.y[0], np.ndarray) else [x.classes.index(label) for label in x.y]
    return x.x, y


def held_out(x, y, validation, seed: int):
    """Training and validation pairs for ``fit`` from ``validation``: a pair (x_val, y_val), a fraction of the
    examples (a seeded random sample), or None (no validation)."""
    if validation is None:
        return (x, y), None
    if isinstance(validation, float):
        train, val = random_parts(len(x), {"validation_split": validation}, seed, "examples")
        pick = lambda items, index: [items[i] for i in index]  # noqa: E731
        return (pick(x, train), pick(y, train)), (pick(x, val), pick(y, val))
    return (x, y), validation


def targets_of(y, count: int, name: str = "y") -> list:
    if y is None:
        raise ValueError(f"{name}: required, expected one target per sequence")
    if len(y) != count:
        raise ValueError(f"{name}: got {len(y)} targets for {count} sequences, expected one per sequence")
    return list(y)


def no_options(options: dict, task: str) -> None:
    if options:
        raise TypeError(f"{', '.join(options)}: not options of the {task} task")
