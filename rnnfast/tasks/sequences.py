"""Sequences of numbers: classification (one label per sequence) and tagging (one tag per step) of measured
sequences such as audio, accelerometers, ECGs or machine logs.

Data (``--format``): the UEA/UCR archive's ``.ts`` files (``rf.data.read_ts``), ``.npz`` arrays
(``rf.data.read_npz``; per-step tags for ``--task tag``), or a folder per class of ``.wav`` files
(``rf.data.read_wav_folder``), whose audio becomes log-mel energies, MFCCs or raw samples (``rf.audio``).
Every feature channel is standardised with the mean and deviation of the training split, saved with the
model's task settings. ``rnnfast eval`` adds the confusion matrix; ``rnnfast predict`` writes a CSV.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import audio, data, metrics
from ..seqmodels import SequenceClassifier, SequenceTagger
from .classify import ClassificationTask, predict_labels
from .classify import scores as class_scores
from .common import (
    BIDIRECTIONAL,
    POOLING,
    UNSEEN,
    Option,
    Prepared,
    cli_parts,
    note,
    one_file,
    option,
    positive_float,
    positive_int,
)
from .tag import EncodedSentences, TaggingTask, predict_tags
from .tag import scores as tag_scores

NAME = "sequences"
HELP = "classify or tag sequences of numbers (.ts, .npz, folders of .wav files)"
TASKS = ("classify", "tag")  # --task values this module serves, for the --format values below
FORMATS = ("ts", "npz", "wav")
# A GRU: on the UCR archive's series an LSTM with these settings hardly leaves chance in 100 epochs, where a GRU
# learns (bench/RESULTS.md, "Sequences of numbers").
DEFAULTS = {
    "cell": "gru",
    "hidden": 128,
    "layers": 1,
    "dropout": 0.0,
    "batch_size": 16,
    "epochs": 100,
    "pooling": "mean",
    "features": "logmel",
    "n_mels": 40,
    "n_mfcc": 13,
    "frame_ms": 25.0,
    "hop_ms": 10.0,
    "frame_window": "hamming",
    "preemphasis": 0.97,
    "missing": "interpolate",
}
OPTIONS: tuple[Option, ...] = (
    POOLING,
    BIDIRECTIONAL,
    option(
        "--features",
        choices=("logmel", "mfcc", "raw"),
        help="wav: log-mel energies (default), MFCCs or the raw samples",
    ),
    option("--n-mels", type=positive_int, help="wav: mel bands (default 40)"),
    option("--n-mfcc", type=positive_int, help="wav: cepstral coefficients of --features mfcc (default 13)"),
    option("--frame-ms", type=positive_float, help="wav: frame length in milliseconds (default 25)"),
    option("--hop-ms", type=positive_float, help="wav: frame step in milliseconds (default 10)"),
    option("--frame-window", choices=("hamming", "hann"), help="wav: window of each frame (default hamming)"),
    option("--preemphasis", type=float, help="wav: pre-emphasis coefficient (default 0.97; 0: off)"),
    option(
        "--sample-rate",
        type=positive_int,
        help="wav: resample every file to this rate (windowed sinc); without it all files must share one rate",
    ),
    option(
        "--missing",
        choices=("interpolate", "error"),
        help="ts, npz: fill missing values by linear "
        "interpolation along time (default; the count is reported) or refuse them",
    ),
)


@dataclass
class Settings:
    VERSION = 1
    kind: str = "classify"  # or "tag"
    format: str = "ts"
    classes: list = field(default_factory=list)  # class (or tag) names in id order
    mean: list = field(default_factory=list)  # per feature channel, of the training split
    std: list = field(default_factory=list)
    features: dict = field(default_factory=dict)  # wav: kind and options of rf.audio.features
    sample_rate: int | None = None
    missing: str = "interpolate"
    encoding: str = "utf-8"


# ----- reading ----------------------------------------------------------------------------------------------
def read(path, settings: Settings) -> data.SequenceSet:
    """One file (ts, npz) or folder (wav) as a SequenceSet of feature arrays (T_i, F)."""
    if settings.format == "ts":
        found = data.read_ts(path, settings.encoding, settings.missing)
    elif settings.format == "npz":
        found = data.read_npz(path, settings.missing)
    else:
        found = data.read_wav_folder(path, settings.sample_rate)
        options = dict(settings.features)
        kind = options.pop("kind")
        found.x = audio.features([s[:, 0] for s in found.x], found.sample_rate, kind, **options)
        found.dimensions = found.x[0].shape[1]
    if found.filled:
        note(f"{path}: filled {found.filled} missing value(s) by linear interpolation along time")
    if found.y is None:
        raise ValueError(f"--data: {path} has no labels, expected labelled sequences to train or evaluate on")
    return found


def _standardize(x: list[np.ndarray], settings: Settings) -> list[np.ndarray]:
    mean, std = np.asarray(settings.mean), np.asarray(settings.std)
    if x and x[0].shape[1] != len(mean):
        raise ValueError(f"--data: got {x[0].shape[1]} feature channel(s), expected {len(mean)} as in training")
    return [((s - mean) / std).astype(np.float32) for s in x]


def _targets(found: data.SequenceSet, settings: Settings, gold: bool):
    """Class ids (N,) or per-step tag ids; with ``gold``, classes the model never saw are ``UNSEEN``."""
    from .common import Vocabulary

    if settings.kind == "tag":
        if not isinstance(found.y[0], np.ndarray):
            raise ValueError(
                "--data: got one label per sequence, expected per-step tags (an .npz 'y' of shape "
                "(N, T)) for --task tag"
            )
        limit = len(settings.classes)
        return [np.where(t < limit, t, UNSEEN) if gold else t for t in found.y]
    if isinstance(found.y[0], np.ndarray):
        raise ValueError(
            "--data: got per-step tags, expected one label per sequence for --task classify (use --task tag)"
        )
    vocabulary = Vocabulary(settings.classes)
    return vocabulary.encode_gold(found.y, "--data") if gold else vocabulary.encode(found.y, "--data")


def _split(found: data.SequenceSet, index) -> data.SequenceSet:
    pick = lambda items: [items[i] for i in index]  # noqa: E731
    files = pick(found.files) if len(found.files) == len(found) else found.files
    return data.SequenceSet(
        pick(found.x),
        pick(found.y),
        found.classes,
        found.problem_name,
        found.dimensions,
        found.sample_rate,
        found.filled,
        files,
    )


def _task(settings: Settings, x, y, batch_size: int, seed: int, val=None, test=None):
    if settings.kind == "classify":
        return ClassificationTask((x, y), val, batch_size, test, seed=seed)
    encoded = lambda part: None if part is None else EncodedSentences(part[0], None, None, part[1])  # noqa: E731
    return TaggingTask(encoded((x, y)), encoded(val), settings.classes, batch_size, encoded(test), seed=seed)


def prepare(args) -> Prepared:
    if args.task not in TASKS:
        raise ValueError(f"--format: {args.format} is for --task classify or tag, got --task {args.task}")
    if args.format != "wav" and any(getattr(args, k) is not None for k in ("sample_rate",)):
        raise ValueError(f"--sample-rate: only for --format wav, got --format {args.format}")
    settings = Settings(
        args.task, args.format, missing=args.missing, encoding=args.encoding, sample_rate=args.sample_rate
    )
    if args.format == "wav":
        settings.features = {"kind": args.features}
        if args.features != "raw":
            settings.features.update(
                frame_ms=args.frame_ms,
                hop_ms=args.hop_ms,
                window=args.frame_window,
                preemphasis=args.preemphasis,
                n_mels=args.n_mels,
            )
            if args.features == "mfcc":
                settings.features.update(n_mfcc=args.n_mfcc, n_mels=max(args.n_mels, args.n_mfcc))
    elif args.features != "logmel" and args.features is not None and args.features != "raw":
        raise ValueError(f"--features: {args.features} is for audio (--format wav), got --format {args.format}")
    path = one_file(args.data, "--data")
    found = read(path, settings)
    kept, held_val, held_test = cli_parts(len(found), args, "sequences")
    train = _split(found, kept)
    val = read(one_file(args.val_data, "--val-data"), settings) if args.val_data else _split(found, held_val)
    test = read(one_file(args.test_data, "--test-data"), settings) if args.test_data else None
    test = _split(found, held_test) if held_test is not None else test
    if settings.kind == "classify":
        settings.classes = list(found.classes)
    else:
        top = max(int(t.max()) for part in (train, val, test) if part is not None for t in part.y)
        settings.classes = [str(i) for i in range(max(top + 1, 2))]
    frames = np.concatenate(train.x)
    std = frames.std(axis=0)
    settings.mean, settings.std = frames.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()

    def prepared(part):
        if part is None:
            return None
        return _standardize(part.x, settings), _targets(part, settings, gold=part is not train)

    x, y = prepared(train)
    task = _task(settings, x, y, args.batch_size, args.seed, prepared(val), prepared(test))
    bidirectional = args.bidirectional if args.bidirectional is not None else settings.kind == "tag"
    common = dict(
        input_size=frames.shape[1],
        hidden_size=args.hidden,
        num_layers=args.layers,
        cell=args.cell,
        bidirectional=bidirectional,
        dropout=args.dropout,
        seed=args.seed,
    )
    if settings.kind == "classify":
        model = SequenceClassifier(len(settings.classes), pooling=args.pooling, **common)
    else:
        model = SequenceTagger(len(settings.classes), tag_names=settings.classes, **common)
    lengths = train.lengths
    summary = (
        f"{len(train):,} training sequences of {frames.shape[1]} channel(s), {int(lengths.min())} to "
        f"{int(lengths.max())} steps, {len(settings.classes)} {'classes' if settings.kind == 'classify' else 'tags'}"
    )
    return Prepared(model, task, settings, None, summary, Path(path).stem)


# ----- checkpoints ------------------------------------------------------------------------------------------
def _read_for(checkpoint, settings: Settings, args):
    settings.encoding = args.encoding or settings.encoding
    found = read(one_file(args.data, "--data"), settings)
    return found, _standardize(found.x, settings)


def evaluate_files(checkpoint, settings: Settings, args) -> dict:
    found, x = _read_for(checkpoint, settings, args)
    y = _targets(found, settings, gold=True)
    batch_size = args.batch_size or 64
    model = checkpoint.model
    if settings.kind == "classify":
        result = class_scores(model, x, y, batch_size)
        predicted = predict_labels(model, x, batch_size)[0]
        gold = np.where(y == UNSEEN, len(settings.classes), y)
    else:
        result = tag_scores(model, EncodedSentences(x, None, None, y), None, batch_size)
        predicted = np.concatenate(predict_tags(model, EncodedSentences(x, None, None, None), batch_size))
        gold = np.concatenate(y)
        gold = np.where(gold == UNSEEN, len(settings.classes), gold)
        result["macro_f1"] = float(metrics.precision_recall_f1(gold, predicted)[2])
    extra = int((gold == len(settings.classes)).any())
    confusion = metrics.confusion_matrix(gold, predicted, len(settings.classes) + extra)
    return {
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "loss": result["loss"],
        "classes": settings.classes + (["(unseen)"] if extra else []),
        "confusion_matrix": confusion.tolist(),
    }


def predict_files(checkpoint, settings: Settings, args):
    found, x = _read_for(checkpoint, settings, args)
    names = (
        [Path(f).name for f in found.files] if len(found.files) == len(found) else [str(i) for i in range(len(found))]
    )
    if settings.kind == "classify":
        probabilities = checkpoint.model.predict_proba(x)
        header = ["id", "label", *(f"p_{c}" for c in settings.classes)]
        rows = [[n, settings.classes[int(p.argmax())], *(f"{v:.6g}" for v in p)] for n, p in zip(names, probabilities)]
    else:
        tags = predict_tags(checkpoint.model, EncodedSentences(x, None, None, None), args.batch_size)
        header = ["id", "tags"]
        rows = [[n, " ".join(settings.classes[t] for t in seq)] for n, seq in zip(names, tags)]

    def write(path):
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    return write


def result_line(result: dict) -> str:
    return " ".join(f"{k} {result[k]:.4f}" for k in ("accuracy", "macro_f1") if result.get(k) is not None)
