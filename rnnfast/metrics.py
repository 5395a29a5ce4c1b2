"""Evaluation metrics for the sequence tasks rnnfast trains.

- classification: ``accuracy``, ``precision_recall_f1``, ``confusion_matrix``;
- tagging: ``chunk_f1``, the chunk-level scores of the CoNLL ``conlleval`` script;
- language modelling: ``perplexity``, ``bits_per_char`` from a mean negative log-likelihood in nats;
- forecasting: ``rmse``, ``mae``, ``mape`` (``inf``, without a warning, when the errors overflow float64).

Every score is a fraction in 0..1 (``conlleval`` prints percentages: multiply by 100 to compare). A zero division
gives 0, like scikit-learn's ``zero_division=0`` and like ``conlleval``.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter

import numpy as np

from . import _checks
from .data import _as_list

_AVERAGES = ("macro", "micro", None)
_SCHEME_PREFIXES = {"iob1": ("B", "I"), "iob2": ("B", "I"), "iobes": ("B", "I", "E", "S")}


# ----- classification ---------------------------------------------------------------------------------------
def _labels(value, name: str) -> np.ndarray:
    """A non-empty 1-d array of class labels: integers (integral floats are accepted) or strings."""
    arr = _checks._to_numpy(value, name)
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: got {arr.ndim}-d array with shape {tuple(arr.shape)}, expected a 1-d array of labels"
        )
    if arr.size == 0:
        raise ValueError(f"{name}: got an empty array, expected at least one label")
    if arr.dtype.kind == "O":
        if all(isinstance(v, str) for v in arr):
            arr = arr.astype(str)
        elif all(isinstance(v, numbers.Integral) for v in arr):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"{name}: got labels of types {sorted({type(v).__name__ for v in arr})}, "
                "expected all labels to be integers or all to be strings"
            )
    if arr.dtype.kind == "f":
        _checks.check_finite(arr, name)
        if not (arr == np.round(arr)).all():
            bad = arr[arr != np.round(arr)][0]
            raise ValueError(f"{name}: got label {bad}, expected integer class labels")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "biuU":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected integer or string labels")
    return arr


def _label_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    true = _labels(y_true, "y_true")
    pred = _labels(y_pred, "y_pred")
    if len(pred) != len(true):
        raise ValueError(f"y_pred: got {len(pred)} labels, expected {len(true)} (the length of y_true)")
    if (true.dtype.kind == "U") != (pred.dtype.kind == "U"):
        raise TypeError(
            f"y_pred: got dtype {pred.dtype} while y_true has dtype {true.dtype}, "
            "expected both to hold strings or both integers"
        )
    return true, pred


def accuracy(y_true, y_pred) -> float:
    """The fraction of positions where ``y_pred`` equals ``y_true``."""
    true, pred = _label_pair(y_true, y_pred)
    return float(np.mean(true == pred))


def _ratio(num, den):
    """num / den elementwise, 0 where den is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _f1(precision, recall):
    return _ratio(2.0 * np.asarray(precision) * recall, np.asarray(precision) + recall)


def precision_recall_f1(y_true, y_pred, average: str | None = "macro", labels=None):
    """Precision, recall and F1 over ``labels`` (default: every label seen in ``y_true`` or ``y_pred``, sorted).

    ``average="macro"`` is the unweighted mean of the per-class scores (F1 is averaged, not recomputed from the
    averaged precision and recall); ``"micro"`` counts true positives, predictions and true labels over the
    classes first, so that with every label included it equals ``accuracy``; ``None`` returns per-class arrays
    in the order of ``labels``. A class with no prediction (or no true example) has precision (or recall) 0, as
    scikit-learn's ``zero_division=0``; a class in ``labels`` that never occurs counts as 0 in the macro mean.
    """
    _checks.choice(average, "average", _AVERAGES)
    true, pred = _label_pair(y_true, y_pred)
    if labels is None:
        classes = np.union1d(true, pred)
    else:
        classes = _labels(labels, "labels")
        if (classes.dtype.kind == "U") != (true.dtype.kind == "U"):
            raise TypeError(
                f"labels: got dtype {classes.dtype} while y_true has dtype {true.dtype}, "
                "expected the same kind of label"
            )
        unique, counts = np.unique(classes, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"labels: got {unique[counts > 1][0]!r} more than once, expected distinct labels")
    is_true = true[None, :] == classes[:, None]  # (C, N)
    is_pred = pred[None, :] == classes[:, None]  # (C, N)
    true_positives = (is_true & is_pred).sum(axis=1)
    predicted = is_pred.sum(axis=1)
    actual = is_true.sum(axis=1)
    if average == "micro":
        precision = float(_ratio(true_positives.sum(), predicted.sum()))
        recall = float(_ratio(true_positives.sum(), actual.sum()))
        return precision, recall, float(_f1(precision, recall))
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, actual)
    f1 = _f1(precision, recall)
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    return precision, recall, f1


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """(C, C) int64 counts: row = true class id, column = predicted class id (scikit-learn's layout).

    Labels are class ids 0..C-1; ``num_classes`` defaults to the largest id seen plus one. A C whose table cannot
    fit in memory raises ValueError naming the argument it came from.
    """
    true, pred = _label_pair(y_true, y_pred)
    if true.dtype.kind == "U":
        raise TypeError("y_true: got string labels, expected integer class ids 0..C-1 (map strings to ids first)")
    # Ranges are checked on the labels as given: a uint64 id beyond int64 is reported as itself, not wrapped.
    if num_classes is None:
        _checks.check_range(true, "y_true", 0, np.iinfo(np.int64).max)
        _checks.check_range(pred, "y_pred", 0, np.iinfo(np.int64).max)
        largest_true, largest_pred = int(true.max()), int(pred.max())
        num_classes = max(largest_true, largest_pred) + 1
        source = "y_true" if largest_true >= largest_pred else "y_pred"
        origin = f"{source}: got class id {num_classes - 1}, which"
    else:
        num_classes = _checks.positive_int(num_classes, "num_classes")
        _checks.check_range(true, "y_true", 0, num_classes - 1)
        _checks.check_range(pred, "y_pred", 0, num_classes - 1)
        origin = f"num_classes: got {num_classes}, which"
    # bincount's table and the pair codes true * C + pred, both int64.
    table_bytes = 8 * (num_classes * num_classes + len(true))
    if table_bytes > _checks.memory_limit():
        raise ValueError(
            f"{origin} needs a {num_classes} x {num_classes} table ({table_bytes / 2**30:.3g} GiB), more "
            "than this machine's memory; expected class ids 0..C-1 for a number of classes C whose "
            "C x C table fits"
        )
    codes = true.astype(np.int64) * num_classes + pred.astype(np.int64)
    counts = np.bincount(codes, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


# ----- chunking (conlleval) ---------------------------------------------------------------------------------
def _split_tag(tag, scheme: str, where: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''). Like conlleval, the type is everything after the first hyphen."""
    if not isinstance(tag, str):
        raise TypeError(f"{where}: got {tag!r} ({type(tag).__name__}), expected a tag string")
    if tag == "O":
        return "O", ""
    prefix, hyphen, chunk_type = tag.partition("-")
    allowed = _SCHEME_PREFIXES[scheme]
    if not hyphen or prefix not in allowed or not chunk_type:
        forms = ", ".join(f"'{p}-TYPE'" for p in allowed)
        raise ValueError(f"{where}: got tag {tag!r}, expected 'O' or one of {forms} for scheme={scheme!r}")
    return prefix, chunk_type


# The two rules below are conlleval's endOfChunk / startOfChunk. For B, I and O they are the Perl script's rules
# exactly; E and S follow the IOBES extension used by the conlleval ports that support it (a chunk ends after
# every E- or S- tag, and B- or S- always starts one). The original script has no S- rule: it would merge
# S-PER S-PER into one chunk.
def _chunk_ends(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """A chunk ended between the previous and the current token."""
    (prev_tag, prev_type), (tag, chunk_type) = prev, cur
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != chunk_type


def _chunk_starts(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """A chunk started at the current token (an I- after O or after another type counts, as in conlleval)."""
    (prev_tag, prev_type), (tag, chunk_type) = prev, cur
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("I", "E"):
        return True
    return tag != "O" and prev_type != chunk_type


def _tag_sentences(tags, name: str, scheme: str) -> list[list[tuple[str, str]]]:
    tags = _as_list(tags, name, "a list of sentences, each a list of tag strings")
    if len(tags) == 0:
        raise ValueError(f"{name}: got no sentences, expected at least one")
    sentences = []
    for i, sentence in enumerate(tags):
        sentence = _as_list(sentence, f"{name}[{i}]", f"a list of tag strings ({name} is a list of sentences)")
        sentences.append([_split_tag(tag, scheme, f"{name}[{i}][{j}]") for j, tag in enumerate(sentence)])
    return sentences


def _prf(correct: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = float(_ratio(correct, predicted))
    recall = float(_ratio(correct, actual))
    return precision, recall, float(_f1(precision, recall))


def chunk_f1(true_tags, pred_tags, scheme: str = "iob2") -> dict:
    """Chunk precision, recall and F1 of ``pred_tags`` against ``true_tags`` with conlleval's rules.

    Both arguments are lists of sentences, each a list of tag strings ('O', 'B-PER', 'I-PER', ...). The numbers
    are exactly those of the CoNLL-2000 ``conlleval`` Perl script, as fractions in 0..1 rather than its
    percentages:

    - a chunk starts at a B- tag, at an I- tag after O, and wherever the type changes (``I-LOC I-PER`` is two
      chunks); so a chunk that starts with I- is still a chunk, and ``B-PER B-PER`` is two chunks;
    - a sentence end closes every chunk;
    - a predicted chunk is correct when it starts and ends on the same tokens as a true chunk of the same type.

    IOB1 and IOB2 use the same rules (they only differ in where B- is required), so ``scheme`` chooses which tag
    prefixes are accepted: B, I for "iob1" and "iob2"; B, I, E, S for "iobes", where a chunk also ends after each
    E- and S- tag (the original script has no S- rule).

    Returns ``{"precision", "recall", "f1", "per_type": {type: {"precision", "recall", "f1", "support"}}}``.
    ``support`` is the number of true chunks of that type; conlleval's last column is the number of predicted
    chunks instead. Types are those of any true or predicted chunk, sorted. With no chunk at all every score is 0.
    """
    _checks.choice(scheme, "scheme", tuple(_SCHEME_PREFIXES))
    true_sentences = _tag_sentences(true_tags, "true_tags", scheme)
    pred_sentences = _tag_sentences(pred_tags, "pred_tags", scheme)
    if len(pred_sentences) != len(true_sentences):
        raise ValueError(
            f"pred_tags: got {len(pred_sentences)} sentences, expected {len(true_sentences)} (as many as true_tags)"
        )
    for i, (true, pred) in enumerate(zip(true_sentences, pred_sentences)):
        if len(pred) != len(true):
            raise ValueError(
                f"pred_tags[{i}]: got {len(pred)} tags, expected {len(true)} (the length of true_tags[{i}])"
            )
    if not any(true_sentences):
        raise ValueError("true_tags: every sentence is empty, expected at least one tag")

    outside = ("O", "")
    correct, actual, predicted = Counter(), Counter(), Counter()
    for true_sentence, pred_sentence in zip(true_sentences, pred_sentences):
        last_true = last_pred = outside
        in_correct = False  # the true and the predicted chunk under way have matched so far
        # The sentence break is conlleval's boundary token: O in both columns, closing every open chunk.
        for true, pred in [*zip(true_sentence, pred_sentence), (outside, outside)]:
            true_ends, pred_ends = _chunk_ends(last_true, true), _chunk_ends(last_pred, pred)
            if in_correct:
                if true_ends and pred_ends and last_pred[1] == last_true[1]:
                    in_correct = False
                    correct[last_true[1]] += 1
                elif true_ends != pred_ends or pred[1] != true[1]:
                    in_correct = False
            true_starts, pred_starts = _chunk_starts(last_true, true), _chunk_starts(last_pred, pred)
            if true_starts and pred_starts and pred[1] == true[1]:
                in_correct = True
            if true_starts:
                actual[true[1]] += 1
            if pred_starts:
                predicted[pred[1]] += 1
            last_true, last_pred = true, pred

    precision, recall, f1 = _prf(sum(correct.values()), sum(predicted.values()), sum(actual.values()))
    per_type = {}
    for chunk_type in sorted(set(actual) | set(predicted)):
        p, r, f = _prf(correct[chunk_type], predicted[chunk_type], actual[chunk_type])
        per_type[chunk_type] = {"precision": p, "recall": r, "f1": f, "support": actual[chunk_type]}
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type}


# ----- language modelling -----------------------------------------------------------------------------------
def perplexity(mean_nll) -> float:
    """exp(mean negative log-likelihood per token, in nats); ``inf`` when that overflows a float."""
    mean_nll = _checks.real(mean_nll, "mean_nll", low=0.0)
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf


def bits_per_char(mean_nll) -> float:
    """A mean negative log-likelihood per character in nats, converted to bits (divided by ln 2)."""
    return _checks.real(mean_nll, "mean_nll", low=0.0) / math.log(2.0)


# ----- forecasting ------------------------------------------------------------------------------------------
def _value_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    true = _checks.as_float_array(y_true, "y_true", np.float64)
    pred = _checks.as_float_array(y_pred, "y_pred", np.float64)
    if true.size == 0:
        raise ValueError("y_true: got an empty array, expected at least one value")
    if pred.shape != true.shape:
        raise ValueError(f"y_pred: got shape {tuple(pred.shape)}, expected {tuple(true.shape)} (the shape of y_true)")
    _checks.check_finite(true, "y_true")
    _checks.check_finite(pred, "y_pred")
    return true, pred


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over every element; ``inf`` when the squared errors overflow float64."""
    true, pred = _value_pair(y_true, y_pred)
    with np.errstate(over="ignore"):
        return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error over every element; ``inf`` when the errors overflow float64."""
    true, pred = _value_pair(y_true, y_pred)
    with np.errstate(over="ignore"):
        return float(np.mean(np.abs(pred - true)))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error as a fraction: mean(|y_pred - y_true| / |y_true|), so 0.05 means 5 %.

    A zero in ``y_true`` raises ValueError rather than being skipped: the error relative to 0 is undefined, and
    silently dropping those points would flatter a forecast; use ``mae`` or ``rmse`` for such series. ``inf`` when
    the errors overflow float64.
    """
    true, pred = _value_pair(y_true, y_pred)
    zeros = np.flatnonzero(true == 0)
    if zeros.size:
        raise ValueError(
            f"y_true: got {zeros.size} zero(s) (first at flat index {zeros[0]}), expected no zeros: "
            "the percentage error is undefined there (use mae or rmse)"
        )
    with np.errstate(over="ignore"):
        return float(np.mean(np.abs(pred - true) / np.abs(true)))


__all__ = [
    "accuracy",
    "precision_recall_f1",
    "confusion_matrix",
    "chunk_f1",
    "perplexity",
    "bits_per_char",
    "rmse",
    "mae",
    "mape",
]
