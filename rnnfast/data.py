"""Readers for the data of sequence tasks, and batching of variable-length sequences.

- tagging: ``read_conll`` / ``write_conll`` (CoNLL column files);
- classification: ``read_labelled_lines`` (``label<TAB>text``) and ``read_class_files`` (one file per class);
- forecasting: ``read_time_series`` (CSV, with gaps reported and filled by linear interpolation);
- sequences of numbers: ``read_ts`` (UEA/UCR ``.ts`` files), ``read_npz`` (NumPy archives) and
  ``read_wav_folder`` (a folder of ``.wav`` clips per class), each returning a ``SequenceSet``;
- batching: ``bucket_batches`` (groups of similar length) and ``pad_batch`` (time-major by default, the layout
  the recurrent layers take).

Every text reader takes ``encoding=``; bytes that do not decode raise ValueError naming the file, a missing file
FileNotFoundError, and a file without data ValueError.
"""

from __future__ import annotations

import codecs
import csv
import math
import numbers
import os
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checks

_DOCSTART = "-DOCSTART-"


def _as_list(value, name: str, expected: str) -> list:
    """Any iterable as a list, refusing the iterables that are single items here (a string, a path, a dict)."""
    if isinstance(value, (str, bytes, os.PathLike, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name}: got {type(value).__name__}, expected {expected}")
    return list(value)


# ----- files ------------------------------------------------------------------------------------------------
def _as_path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: got {type(path).__name__}, expected a file path (str or os.PathLike)")
    return Path(path)


def _check_encoding(encoding) -> str:
    if not isinstance(encoding, str):
        raise TypeError(f"encoding: got {encoding!r} ({type(encoding).__name__}), expected a codec name")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"encoding: got {encoding!r}, expected a codec name such as 'utf-8' or 'latin-1'") from None
    return encoding


def _read_lines(path, encoding: str, name: str = "path") -> list[str]:
    """The file's lines without line endings; a UTF-8 byte-order mark is dropped."""
    path = _as_path(path, name)
    encoding = _check_encoding(encoding)
    try:
        with open(path, encoding=encoding) as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: byte {exc.object[exc.start : exc.start + 1]!r} at offset {exc.start} is not valid "
            f"{encoding}; pass encoding= with the file's encoding (for example encoding='latin-1')"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ValueError(f"{path}: the file is empty, expected data")
    return text.split("\n")


# ----- CoNLL ------------------------------------------------------------------------------------------------
@dataclass
class TaggedSentences:
    """Sentences of a CoNLL file: ``words[i][j]`` is token j of sentence i, ``tags[i][j]`` its tag (None when the
    file was read with ``tag_column=None``), ``features[i][j]`` the token's ``feature_columns`` in order, and
    ``lines[i][j]`` the token's line as it was in the file (used by ``write_conll``)."""

    words: list[list[str]]
    tags: list[list[str]] | None
    features: list[list[list[str]]]
    lines: list[list[str]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.words)


def _column_index(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {value!r} ({type(value).__name__}), expected a column index (int)")
    return int(value)


def _min_columns(indices: list[int], distinct: tuple[int, int] | None) -> int:
    """The fewest columns a line needs so that every index exists and the two ``distinct`` ones differ (a
    non-negative and a negative index meet on exactly one line width, below which no line can be read)."""
    n = max(i + 1 if i >= 0 else -i for i in indices)
    while distinct is not None and distinct[0] % n == distinct[1] % n:
        n += 1
    return n


def read_conll(
    path,
    word_column: int = 0,
    tag_column: int | None = -1,
    feature_columns: Sequence[int] = (),
    encoding: str = "utf-8",
) -> TaggedSentences:
    """Read a CoNLL column file: one token per line, columns separated by whitespace, a blank line between
    sentences; ``-DOCSTART-`` lines are skipped. Column indices may be negative (-1 is the last column);
    ``tag_column=None`` reads untagged text. A line with too few columns, or with another number of columns
    than the first token line, raises ValueError naming the file and the line."""
    word_column = _column_index(word_column, "word_column")
    tag_column = None if tag_column is None else _column_index(tag_column, "tag_column")
    feature_columns = [
        _column_index(c, f"feature_columns[{k}]")
        for k, c in enumerate(_as_list(feature_columns, "feature_columns", "a list of column indices"))
    ]
    if tag_column == word_column:
        raise ValueError(f"tag_column: got {tag_column}, the same column as word_column, expected a different one")
    indices = [word_column, *feature_columns] + ([] if tag_column is None else [tag_column])
    needed = _min_columns(indices, None if tag_column is None else (word_column, tag_column))

    words, tags, features, lines = [], [], [], []
    current: list[tuple[str, list[str]]] = []

    def close_sentence():
        if current:
            words.append([cols[word_column] for _, cols in current])
            if tag_column is not None:
                tags.append([cols[tag_column] for _, cols in current])
            features.append([[cols[c] for c in feature_columns] for _, cols in current])
            lines.append([line for line, _ in current])
            current.clear()

    width = None  # columns of the file's first token line: every token line must have as many
    for number, line in enumerate(_read_lines(path, encoding), start=1):
        columns = line.split()
        if not columns:
            close_sentence()
            continue
        if columns[0] == _DOCSTART:
            continue
        if width is None:
            width, first = len(columns), number
        elif len(columns) != width:
            # A short line would otherwise shift its columns: its last column would silently become the tag.
            raise ValueError(
                f"{path}: line {number} has {len(columns)} column(s), expected {width} like line {first}: {line!r}"
            )
        if len(columns) < needed:
            raise ValueError(
                f"{path}: line {number} has {len(columns)} column(s), expected at least {needed} "
                f"(word_column={word_column}, tag_column={tag_column}, "
                f"feature_columns={tuple(feature_columns)}): {line!r}"
            )
        current.append((line.rstrip(), columns))
    close_sentence()
    if not words:
        raise ValueError(f"{path}: no tokens found, expected CoNLL lines (one token per line)")
    return TaggedSentences(words, tags if tag_column is not None else None, features, lines)


def write_conll(path, sentences: TaggedSentences, predicted_tags, encoding: str = "utf-8") -> None:
    """Write ``sentences`` back as they were read, each token line followed by its predicted tag as one more
    column (a tab when the line's columns are tab-separated, else a space), a blank line after each sentence.
    With the gold tag in the last column, the output is what ``conlleval`` reads. ``-DOCSTART-`` lines are not
    written back."""
    path = _as_path(path)
    encoding = _check_encoding(encoding)
    if not isinstance(sentences, TaggedSentences):
        raise TypeError(f"sentences: got {type(sentences).__name__}, expected TaggedSentences (from read_conll)")
    predicted_tags = _as_list(predicted_tags, "predicted_tags", "a list of sentences, each a list of tags")
    if len(predicted_tags) != len(sentences):
        raise ValueError(f"predicted_tags: got {len(predicted_tags)} sentences, expected {len(sentences)}")
    out = []
    for i, (lines, predicted) in enumerate(zip(sentences.lines, predicted_tags)):
        predicted = _as_list(predicted, f"predicted_tags[{i}]", f"a list of {len(lines)} tags")
        if len(predicted) != len(lines):
            raise ValueError(
                f"predicted_tags[{i}]: got {len(predicted)} tags, expected {len(lines)} (the length of sentence {i})"
            )
        for j, (line, tag) in enumerate(zip(lines, predicted)):
            if not isinstance(tag, str) or not tag or tag.split() != [tag]:
                raise ValueError(f"predicted_tags[{i}][{j}]: got {tag!r}, expected a non-empty tag without spaces")
            out.append(line + ("\t" if "\t" in line else " ") + tag + "\n")
        out.append("\n")
    with open(path, "w", encoding=encoding) as f:
        f.writelines(out)


# ----- text classification ----------------------------------------------------------------------------------
def read_labelled_lines(path, encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """Read ``label<TAB>text`` lines (split at the first tab; blank lines skipped) -> (texts, labels)."""
    texts, labels = [], []
    for number, line in enumerate(_read_lines(path, encoding), start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or not label.strip():
            raise ValueError(f"{path}: line {number} is {line[:60]!r}, expected 'label<TAB>text'")
        labels.append(label.strip())
        texts.append(text)
    return texts, labels


def read_class_files(paths, encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """Read one file per class, one example per non-blank line; a file's label is its name without the
    extension (``pos.txt`` -> ``pos``). Returns (texts, labels) in the order of ``paths``."""
    paths = _as_list(paths, "paths", "a list of file paths (one per class)")
    if len(paths) == 0:
        raise ValueError("paths: got an empty list, expected one file per class")
    texts, labels, seen = [], [], {}
    for k, path in enumerate(paths):
        label = _as_path(path, f"paths[{k}]").stem
        if label in seen:
            raise ValueError(
                f"paths[{k}]: {path} has the label {label!r} of paths[{seen[label]}], "
                "expected one file per class with distinct names"
            )
        seen[label] = k
        examples = [line for line in _read_lines(path, encoding, f"paths[{k}]") if line.strip()]
        texts += examples
        labels += [label] * len(examples)
    return texts, labels


# ----- time series ------------------------------------------------------------------------------------------
_DATE = re.compile(r"^(\d{4})(?:([-/]?)(\d{2})(?:\2(\d{2}))?)?$")
_UNIT = {"daily": "D", "weekly": "D", "monthly": "M", "yearly": "Y"}
_STEP = {"daily": 1, "weekly": 7, "monthly": 1, "yearly": 1}


@dataclass
class Gap:
    """One missing value: ``reason`` is 'missing cell', 'empty cell', 'non-numeric cell' or 'missing date';
    ``line`` the CSV line (None for a missing date), ``column`` the value column's name, ``date`` its date (None
    without a date column), ``text`` the cell as written, and ``index`` its position in ``TimeSeries.values``
    (None for a gap at either end, which is dropped rather than extrapolated)."""

    reason: str
    line: int | None
    column: str
    date: np.datetime64 | None
    text: str
    index: int | None


@dataclass
class GapReport:
    """The gaps of a series: ``filled`` ones were linearly interpolated, ``dropped`` ones lay before the first or
    after the last number and were cut off."""

    filled: list[Gap]
    dropped: list[Gap]

    @property
    def count(self) -> int:
        return len(self.filled) + len(self.dropped)

    def counts(self) -> dict[str, int]:
        """How many gaps of each reason."""
        out: dict[str, int] = {}
        for gap in self.filled + self.dropped:
            out[gap.reason] = out.get(gap.reason, 0) + 1
        return out

    def __str__(self) -> str:
        if not self.count:
            return "no gaps"

        def where(gaps):
            places = [f"line {g.line}" if g.line is not None else str(g.date) for g in gaps[:5]]
            return ", ".join(places) + (f" and {len(gaps) - 5} more" if len(gaps) > 5 else "")

        parts = [f"{n} {reason}(s)" for reason, n in self.counts().items()]
        text = f"{self.count} gap(s): " + ", ".join(parts)
        if self.filled:
            text += f"; {len(self.filled)} filled by linear interpolation at {where(self.filled)}"
        if self.dropped:
            text += f"; {len(self.dropped)} dropped at the ends at {where(self.dropped)}"
        return text


@dataclass(eq=False)
class TimeSeries:
    """A regular series: ``values`` (float64, gaps filled), ``dates`` (datetime64 in days for daily and weekly
    series, months for monthly, years for yearly; None without a date column), the inferred ``frequency``
    ('daily', 'weekly', 'monthly', 'yearly' or None) and the ``report`` of gaps."""

    values: np.ndarray
    dates: np.ndarray | None
    frequency: str | None
    report: GapReport

    def __len__(self) -> int:
        return len(self.values)


def _parse_date(text: str, where: str) -> tuple[np.datetime64, str]:
    """The date as a day, and 'Y', 'M' or 'D' for how much of it was written."""
    match = _DATE.match(text.strip())
    if match:
        year, _, month, day = match.groups()
        try:
            date = np.datetime64(f"{year}-{month or '01'}-{day or '01'}", "D")
        except ValueError:
            pass
        else:
            return date, "D" if day else "M" if month else "Y"
    raise ValueError(f"{where}: got date {text!r}, expected YYYY, YYYY-MM, YYYY-MM-DD or YYYYMMDD")


def _infer_frequency(days: np.ndarray, resolutions: list[str], lines: list[int], path) -> str:
    """'daily', 'weekly', 'monthly' or 'yearly' for strictly increasing dates (rules in read_time_series).
    Daily and weekly go by the smallest step, so that gaps do not change the frequency."""
    steps = np.diff(days.astype(np.int64))
    if (steps <= 0).any():
        k = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ValueError(
            f"{path}: line {lines[k]} has date {days[k]}, expected a date after {days[k - 1]} (dates must increase)"
        )
    mixed = [k for k, r in enumerate(resolutions) if r != resolutions[0]]
    if mixed:
        raise ValueError(
            f"{path}: line {lines[mixed[0]]} writes its date with a different precision than line "
            f"{lines[0]}, expected one date format"
        )
    if resolutions[0] != "D":
        return "yearly" if resolutions[0] == "Y" else "monthly"
    if len(days) < 2:
        raise ValueError(f"{path}: got 1 dated row, expected at least 2 to infer the frequency of full dates")
    months = days.astype("datetime64[M]")
    day_of_month = days - months.astype("datetime64[D]")
    month_ends = (days + 1).astype("datetime64[M]") != months
    if (day_of_month == day_of_month[0]).all() or month_ends.all():
        month_steps = int(np.gcd.reduce(np.diff(months.astype(np.int64))))
        if month_steps == 1 or month_steps % 12 == 0:
            return "monthly" if month_steps == 1 else "yearly"
        raise ValueError(
            f"{path}: dates are a multiple of {month_steps} months apart, expected a monthly or yearly series"
        )
    smallest = int(steps.min())
    if smallest == 1:
        return "daily"
    if smallest % 7 == 0:
        off_grid = np.flatnonzero(steps % 7)
        if off_grid.size:
            k = int(off_grid[0]) + 1
            raise ValueError(
                f"{path}: line {lines[k]} has date {days[k]}, which is not a whole number of weeks after {days[0]}"
            )
        return "weekly"
    raise ValueError(
        f"{path}: the smallest step between dates is {smallest} days, expected a daily, weekly, "
        "monthly or yearly series"
    )


def _resolve_column(column, header: list[str], name: str, path) -> int:
    if isinstance(column, str):
        if column not in header:
            raise ValueError(f"{name}: got {column!r}, expected one of the columns of {path}: {header}")
        return header.index(column)
    index = _column_index(column, name)
    if not -len(header) <= index < len(header):
        raise ValueError(
            f"{name}: got {index}, expected a column index in {-len(header)}..{len(header) - 1} "
            f"({path} has {len(header)} columns)"
        )
    return index % len(header)


def _parse_value(row: list[str], index: int) -> tuple[float, str | None]:
    """The cell's number, or NaN and why it is missing."""
    if index >= len(row):
        return np.nan, "missing cell"
    text = row[index].strip()
    if not text:
        return np.nan, "empty cell"
    try:
        value = float(text)
    except ValueError:
        return np.nan, "non-numeric cell"
    return (value, None) if np.isfinite(value) else (np.nan, "non-numeric cell")


def _series_columns(column, date_column, header: list[str], path) -> tuple[list[int], int | None]:
    """The value columns and the date column (or None) as indices into ``header``."""
    if isinstance(column, (str, numbers.Integral)):
        value_columns = [_resolve_column(column, header, "column", path)]
    else:
        column = _as_list(column, "column", "a column name or index, or a list of them")
        if not column:
            raise ValueError("column: got an empty list, expected a column name or index, or a list of them")
        value_columns = [_resolve_column(c, header, f"column[{k}]", path) for k, c in enumerate(column)]
    date_index = None if date_column is None else _resolve_column(date_column, header, "date_column", path)
    if len(value_columns) > 1 and date_index is not None and len(value_columns) != 12:
        raise ValueError(
            f"column: got {len(value_columns)} columns with a date column, expected 12 (one per month "
            "of each row's year)"
        )
    return value_columns, date_index


def _date_grid(
    row_dates: list[np.datetime64], resolutions: list[str], row_lines: list[int], per_row: int, path
) -> tuple[np.ndarray, np.ndarray, str]:
    """(position on the regular grid of each cell in reading order, the grid's dates, the frequency)."""
    days = np.array(row_dates, dtype="datetime64[D]")
    frequency = _infer_frequency(days, resolutions, row_lines, path)
    if per_row > 1:
        if frequency != "yearly":
            raise ValueError(f"date_column: got {frequency} rows, expected one row per year for 12 month columns")
        frequency = "monthly"
        years = days.astype("datetime64[Y]").astype(np.int64)
        periods = (years[:, None] * 12 + np.arange(12)[None, :]).ravel()
    else:
        periods = days.astype(f"datetime64[{_UNIT[frequency]}]").astype(np.int64)
    step = _STEP[frequency]
    positions = (periods - periods[0]) // step
    dates = (periods[0] + step * np.arange(positions[-1] + 1)).astype(f"datetime64[{_UNIT[frequency]}]")
    return positions, dates, frequency


def _fill_gaps(grid: np.ndarray, gaps: list[tuple[int, Gap]], names: str, path) -> tuple[np.ndarray, GapReport, slice]:
    """Interpolate the NaNs of ``grid`` between its first and last number and cut off the ones outside; also
    returns the part of the grid kept."""
    observed = np.flatnonzero(np.isfinite(grid))
    if observed.size == 0:
        raise ValueError(f"{path}: column {names} has no numeric value, expected numbers")
    first, last = int(observed[0]), int(observed[-1])
    filled, dropped = [], []
    for position, gap in sorted(gaps, key=lambda item: item[0]):
        if first <= position <= last:
            gap.index = position - first
            filled.append(gap)
        else:
            dropped.append(gap)
    values = grid[first : last + 1].copy()
    holes = ~np.isfinite(values)
    values[holes] = np.interp(np.flatnonzero(holes), observed - first, grid[observed])
    return values, GapReport(filled, dropped), slice(first, last + 1)


def read_time_series(path, column, date_column=None, encoding: str = "utf-8") -> TimeSeries:
    """Read one series from a CSV file with a header row.

    ``column`` is a column name or index. A list of columns reads a wide table row by row (elnino.csv: a YEAR
    column and one column per month, ``column=["JAN", ..., "DEC"]``); with a date column its rows must be years
    and the columns their 12 months.

    Empty, missing and non-numeric cells are gaps. With ``date_column`` (dates as YYYY, YYYY-MM, YYYY-MM-DD,
    YYYY/MM/DD or YYYYMMDD, increasing) the series is daily, weekly, monthly or yearly. Dates written as years or
    months have that frequency; full dates sharing their day of the month (or all month ends) are monthly, or
    yearly when they are whole years apart; other full dates are daily or weekly by their smallest step. Every
    date missing from that regular grid is a gap too. Gaps inside the series are filled by linear interpolation;
    gaps before the first or after the last number are dropped. ``report`` lists each gap with its line and date.
    """
    reader = csv.reader(_read_lines(path, encoding))
    header = [cell.strip() for cell in next(row for row in reader if any(cell.strip() for cell in row))]
    value_columns, date_index = _series_columns(column, date_column, header, path)

    values, cell_gaps = [], []  # cell_gaps: (cell number in reading order, gap)
    row_dates, resolutions, row_lines = [], [], []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        if date_index is not None:
            date, resolution = _parse_date(row[date_index] if date_index < len(row) else "", f"{path}: line {line}")
            row_dates.append(date)
            resolutions.append(resolution)
        row_lines.append(line)
        for index in value_columns:
            value, reason = _parse_value(row, index)
            if reason is not None:
                text = row[index] if index < len(row) else ""
                cell_gaps.append((len(values), Gap(reason, line, header[index], None, text, None)))
            values.append(value)
    if not row_lines:
        raise ValueError(f"{path}: no data rows after the header, expected at least one")

    if date_index is None:
        positions, dates, frequency = np.arange(len(values)), None, None
    else:
        positions, dates, frequency = _date_grid(row_dates, resolutions, row_lines, len(value_columns), path)
    grid = np.full(int(positions[-1]) + 1, np.nan)
    grid[positions] = values
    gaps = [(int(positions[cell]), gap) for cell, gap in cell_gaps]
    missing = np.ones(len(grid), bool)
    missing[positions] = False
    # A wide table's grid starts at the first month of a year, so position % 12 is the month's column.
    gaps += [
        (int(pos), Gap("missing date", None, header[value_columns[pos % len(value_columns)]], None, "", None))
        for pos in np.flatnonzero(missing)
    ]
    if dates is not None:
        for position, gap in gaps:
            gap.date = dates[position]
    values, report, kept = _fill_gaps(grid, gaps, ", ".join(header[i] for i in value_columns), path)
    return TimeSeries(values, None if dates is None else dates[kept], frequency, report)


# ----- batching ---------------------------------------------------------------------------------------------
def bucket_batches(
    lengths, batch_size: int, shuffle: bool = True, seed: int | None = None, pool_batches: int = 100
) -> list[np.ndarray]:
    """Batches of indices into ``lengths`` whose sequences have similar lengths, so little padding is needed.

    With ``shuffle`` the indices are permuted, cut into pools of ``pool_batches * batch_size``, each pool is
    sorted by length and cut into batches, and the batch order is shuffled: batches differ between epochs
    (different seeds) while each stays nearly uniform in length. Without ``shuffle`` every index is sorted by
    length (stable) and the batches come shortest first. Every index appears exactly once; only the last batch
    of the last pool may be smaller than ``batch_size``.
    """
    lengths = _checks.as_int_array(lengths, "lengths", ndim=1)
    if lengths.size == 0:
        raise ValueError("lengths: got an empty array, expected at least one sequence length")
    _checks.check_range(lengths, "lengths", 0, np.iinfo(np.int64).max)
    batch_size = _checks.positive_int(batch_size, "batch_size")
    pool_batches = _checks.positive_int(pool_batches, "pool_batches")
    rng = _checks.rng(seed)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    pool_size = pool_batches * batch_size
    batches = []
    for start in range(0, len(order), pool_size):
        pool = order[start : start + pool_size]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def _pad_dtype_check(pad_value, dtype: np.dtype) -> None:
    if isinstance(pad_value, bool) or not isinstance(pad_value, numbers.Real):
        raise TypeError(f"pad_value: got {pad_value!r} ({type(pad_value).__name__}), expected a number")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (np.isfinite(pad_value) and pad_value == int(pad_value) and info.min <= pad_value <= info.max):
            raise ValueError(
                f"pad_value: got {pad_value!r}, expected an integer in {info.min}..{info.max} for "
                f"sequences of dtype {dtype}"
            )
    elif dtype.kind == "b" and pad_value not in (0, 1):
        raise ValueError(f"pad_value: got {pad_value!r}, expected 0 or 1 for boolean sequences")


def pad_batch(sequences, pad_value=0, time_major: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of different lengths into one array padded with ``pad_value``.

    Each sequence is (T_i,) (token ids) or (T_i, F, ...) (features) with the same trailing shape. Returns
    ``(padded, lengths)``: padded is (T_max, B, ...) with ``time_major`` (the layout the recurrent layers take)
    or (B, T_max, ...) otherwise, in the sequences' common dtype; lengths is int64 (B,).
    """
    sequences = _as_list(sequences, "sequences", "a list of arrays")
    if len(sequences) == 0:
        raise ValueError("sequences: got an empty list, expected at least one sequence")
    arrays = []
    for i, seq in enumerate(sequences):
        arr = _checks._to_numpy(seq, f"sequences[{i}]")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"sequences[{i}]: got dtype {arr.dtype}, expected numbers")
        if arr.ndim == 0:
            raise ValueError(f"sequences[{i}]: got a scalar, expected a sequence of shape (T,) or (T, F)")
        if arrays and arr.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(
                f"sequences[{i}]: got shape {tuple(arr.shape)}, expected (T,) + "
                f"{tuple(arrays[0].shape[1:])} like sequences[0]"
            )
        if arr.dtype.kind == "f":
            _checks.check_finite(arr, f"sequences[{i}]")
        arrays.append(arr)
    # An empty list becomes float64 in numpy; it must not turn a batch of token ids into floats.
    dtype = np.result_type(*([a for a in arrays if a.size] or arrays))
    _pad_dtype_check(pad_value, dtype)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    padded = np.full((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), pad_value, dtype=dtype)
    for row, arr in zip(padded, arrays):
        row[: len(arr)] = arr
    if time_major:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))
    return padded, lengths


# ----- sequences of numbers: .ts, .npz, audio ---------------------------------------------------------------
@dataclass(eq=False)
class SequenceSet:
    """Sequences of numbers with their labels, as ``read_ts``, ``read_npz`` and ``read_wav_folder`` return them.

    - ``x``: one float64 array of shape (T_i, F) per sequence, F = ``dimensions`` (1 for audio), missing values
      already filled;
    - ``y``: one class name (str) per sequence; from an .npz with per-step tags, one int64 array (T_i,) per
      sequence instead; None when the data has no labels;
    - ``classes``: the class names, in the file's order for ``read_ts`` (its ``@classLabel`` line), sorted for the
      other readers (integer labels numerically); None without class labels;
    - ``problem_name``: the ``.ts`` file's ``@problemName``, else the file's stem (the folder's name for audio);
    - ``dimensions``: F; ``sample_rate``: in Hz for audio, else None;
    - ``filled``: how many missing values were filled by interpolation;
    - ``files``: the files read, as strings: the one file of ``read_ts`` and ``read_npz``, one per sequence (in the
      order of ``x``) for ``read_wav_folder``.
    """

    x: list[np.ndarray] = field(repr=False)
    y: list[str] | list[np.ndarray] | None = field(repr=False)
    classes: list[str] | None
    problem_name: str
    dimensions: int
    sample_rate: int | None = None
    filled: int = 0
    files: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def lengths(self) -> np.ndarray:
        """T_i of every sequence (int64)."""
        return np.array([len(s) for s in self.x], dtype=np.int64)


_MISSING_MODES = ("interpolate", "error")


def _fill_missing(series: np.ndarray, missing: str, where) -> int:
    """Fill the NaNs of a (T, F) series in place by linear interpolation along time, dimension by dimension (a
    leading or trailing run takes the nearest value); returns how many. ``where(t, d)`` names value t of dimension
    d (t None: the whole dimension) for the messages; with ``missing='error'`` the first NaN is refused."""
    holes = np.isnan(series)
    if not holes.any():
        return 0
    if missing == "error":
        t, d = (int(i) for i in np.argwhere(holes)[0])
        raise ValueError(
            f"{where(t, d)} is missing, expected a number (missing='error'; missing='interpolate' fills it)"
        )
    steps = np.arange(len(series))
    for d in np.flatnonzero(holes.any(axis=0)):
        column, gap = series[:, d], holes[:, d]
        if gap.all():
            raise ValueError(
                f"{where(None, int(d))} has no value (all {len(series)} missing), expected at least one "
                "number to interpolate from"
            )
        column[gap] = np.interp(steps[gap], steps[~gap], column[~gap])
    return int(holes.sum())


_TS_KEYS = {
    "problemname": "@problemName",
    "timestamps": "@timeStamps",
    "missing": "@missing",
    "univariate": "@univariate",
    "dimensions": "@dimensions",
    "equallength": "@equalLength",
    "serieslength": "@seriesLength",
    "classlabel": "@classLabel",
    "targetlabel": "@targetLabel",
    "data": "@data",
}


def _ts_flag(header: dict, key: str, path) -> bool | None:
    """The true/false value of a header line (its first word), None when the line is absent."""
    if key not in header:
        return None
    values, number = header[key]
    if not values or values[0].lower() not in ("true", "false"):
        raise ValueError(f"{path}: line {number} is {_TS_KEYS[key]} {' '.join(values)!r}, expected true or false")
    return values[0].lower() == "true"


def _ts_count(header: dict, key: str, path) -> int | None:
    if key not in header:
        return None
    values, number = header[key]
    if len(values) != 1 or not values[0].isdigit() or int(values[0]) < 1:
        raise ValueError(f"{path}: line {number} is {_TS_KEYS[key]} {' '.join(values)!r}, expected a positive integer")
    return int(values[0])


def _ts_values(text: str, where: str) -> list[float]:
    """The numbers of one dimension of a series ('?' and NaN are missing: NaN)."""
    items = text.split(",")
    try:
        values = [np.nan if item.strip() == "?" else float(item) for item in items]
    except ValueError:
        values = None
    if values is not None and not any(np.isinf(values)):
        return values
    for k, item in enumerate(items):
        try:
            ok = item.strip() == "?" or not np.isinf(float(item))
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"{where}, value {k + 1} is {item.strip()!r}, expected a finite number, or '?' or NaN "
                "for a missing value"
            )
    raise AssertionError("unreachable")  # pragma: no cover


def read_ts(path, encoding: str = "utf-8", missing: str = "interpolate") -> SequenceSet:
    """Read a classification file in the ``.ts`` format of the UEA/UCR archive.

    The header (keys case-insensitive, ``#`` lines are comments) may have ``@problemName``, ``@timeStamps`` (true
    is refused: not supported), ``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``,
    ``@seriesLength``, ``@classLabel true <labels...>`` (or false: the series have no label) and ``@targetLabel``
    (true, a regression file, is refused); it ends with ``@data``. Then one series per line: its dimensions
    separated by ``:``, values by ``,``, and with ``@classLabel true`` the class label after the last ``:``.
    Series may have different lengths; the dimensions of one series must have the same length.

    ``?`` or ``NaN`` is a missing value. ``missing='interpolate'`` fills it by linear interpolation along time
    (leading and trailing ones take the nearest value; a dimension with no value is an error) and counts it in
    ``filled``; ``missing='error'`` refuses the first one. A series with another number of dimensions than
    ``@dimensions`` (or ``@univariate true``, or the first series), another length than ``@seriesLength`` (or the
    first series) under ``@equalLength true``, a label not in ``@classLabel``, a value that is not a number, an
    empty series, an unknown header line or a file without ``@data`` raise ValueError naming the file and line.
    ``x`` is float64.
    """
    path = _as_path(path)
    missing = _checks.choice(missing, "missing", _MISSING_MODES)
    lines = _read_lines(path, encoding)
    header: dict[str, tuple[list[str], int]] = {}
    data_line = None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("@"):
            raise ValueError(
                f"{path}: line {number} is {text[:40]!r} before @data, expected a header line "
                "('@key value') or a '#' comment"
            )
        key, *values = text.split()
        key = key[1:].lower()
        if key not in _TS_KEYS:
            raise ValueError(
                f"{path}: line {number} has header {text.split()[0]!r}, expected one of {', '.join(_TS_KEYS.values())}"
            )
        if key in header:
            raise ValueError(
                f"{path}: line {number} repeats {_TS_KEYS[key]} of line {header[key][1]}, expected it once"
            )
        if key == "data":
            data_line = number
            break
        header[key] = (values, number)
    if data_line is None:
        raise ValueError(
            f"{path}: no @data line (read to line {len(lines)}), expected the header to end with "
            "@data and the series to follow it"
        )

    if _ts_flag(header, "timestamps", path):
        raise ValueError(
            f"{path}: line {header['timestamps'][1]} is @timeStamps true: series with time stamps are "
            "not supported, expected @timeStamps false"
        )
    if _ts_flag(header, "targetlabel", path):
        raise ValueError(
            f"{path}: line {header['targetlabel'][1]} is @targetLabel true: regression files are not "
            "supported, expected a classification file (@classLabel)"
        )
    _ts_flag(header, "missing", path)
    classes = None
    if _ts_flag(header, "classlabel", path):
        labels, number = header["classlabel"]
        classes = labels[1:]
        if not classes:
            raise ValueError(
                f"{path}: line {number} is @classLabel true without labels, expected "
                "'@classLabel true <label> <label> ...'"
            )
        if len(set(classes)) != len(classes):
            repeated = next(c for c in classes if classes.count(c) > 1)
            raise ValueError(f"{path}: line {number} lists class label {repeated!r} twice, expected distinct labels")
    elif "classlabel" in header and len(header["classlabel"][0]) > 1:
        raise ValueError(
            f"{path}: line {header['classlabel'][1]} is @classLabel false followed by labels, expected "
            "@classLabel true to list labels"
        )
    dims = _ts_count(header, "dimensions", path)
    univariate = _ts_flag(header, "univariate", path)
    if univariate and dims not in (None, 1):
        raise ValueError(
            f"{path}: line {header['dimensions'][1]} is @dimensions {dims} but line "
            f"{header['univariate'][1]} is @univariate true, expected one of them to change"
        )
    dims_source = (
        f"@dimensions on line {header['dimensions'][1]}"
        if dims is not None
        else f"@univariate true on line {header['univariate'][1]}"
        if univariate
        else None
    )
    if univariate:
        dims = 1
    equal_length = bool(_ts_flag(header, "equallength", path))
    length = _ts_count(header, "serieslength", path) if equal_length else None
    length_source = None if length is None else f"@seriesLength on line {header['serieslength'][1]}"
    class_set = set(classes or ())

    x, y, filled = [], [], 0
    for number in range(data_line + 1, len(lines) + 1):
        text = lines[number - 1].strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}: line {number}"
        body = text
        if classes is not None:
            body, colon, label = text.rpartition(":")
            label = label.strip()
            if not colon:
                raise ValueError(
                    f"{where} has no ':' before a class label, expected the series then ':<label>' (@classLabel true)"
                )
            if label not in class_set:
                raise ValueError(
                    f"{where} has class label {label!r}, expected one of @classLabel on line "
                    f"{header['classlabel'][1]}: {' '.join(classes)}"
                )
        parts = body.split(":")
        if dims is None:
            dims, dims_source = len(parts), f"like line {number}"
        elif len(parts) != dims:
            raise ValueError(f"{where} has {len(parts)} dimension(s), expected {dims} ({dims_source})")
        columns = []
        for d, part in enumerate(parts):
            if not part.strip():
                raise ValueError(f"{where}: dimension {d + 1} is an empty series, expected numbers separated by ','")
            columns.append(_ts_values(part, f"{where}, dimension {d + 1}"))
        sizes = [len(c) for c in columns]
        if len(set(sizes)) > 1:
            raise ValueError(
                f"{where} has dimensions of lengths {sizes}, expected one length for every dimension of a series"
            )
        if equal_length and length is None:
            length, length_source = sizes[0], f"like line {number}, @equalLength true"
        if equal_length and sizes[0] != length:
            raise ValueError(f"{where} has a series of length {sizes[0]}, expected {length} ({length_source})")
        series = np.array(columns, dtype=np.float64).T.copy()
        filled += _fill_missing(
            series,
            missing,
            lambda t, d, where=where: f"{where}, dimension {d + 1}" + ("" if t is None else f", value {t + 1}"),
        )
        x.append(series)
        if classes is not None:
            y.append(label)
    if not x:
        raise ValueError(f"{path}: no series after @data on line {data_line}, expected one series per line")
    name = " ".join(header["problemname"][0]) if "problemname" in header else ""
    return SequenceSet(
        x, y if classes is not None else None, classes, name or path.stem, dims, None, filled, [str(path)]
    )


def _npz_key(archive, key: str, path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's refusal of an object (pickled) array
            raise ValueError(
                f"{path}: key {key!r} holds an object array, which is not loaded (allow_pickle=False: "
                "unpickling can run code); expected numbers or strings (save strings with dtype str, "
                "not object)"
            ) from None
        raise ValueError(f"{path}: key {key!r} cannot be read ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: key {key!r} cannot be read ({exc})") from None


def read_npz(path, missing: str = "interpolate") -> SequenceSet:
    """Read sequences from a NumPy ``.npz`` archive (``np.savez``), loaded with ``allow_pickle=False``.

    Keys: ``x`` (N, T, F) or (N, T) (then F = 1), real numbers; optional ``lengths`` (N,) integers in 1..T, and
    sequence i is ``x[i, :lengths[i]]`` (all T steps without it); optional ``y``: (N,) class labels (integers or
    strings, returned as strings) or (N, T) integer per-step tags (each cut to its sequence's length). Other keys
    are ignored. NaN in x (within the lengths) is a missing value, filled or refused as ``missing`` says (see
    ``read_ts``); infinities are refused. A missing ``x``, an object array, a wrong shape or dtype, a length out
    of range, or a file that is not an .npz archive raise ValueError naming the file and the key. ``x`` is
    float64.
    """
    path = _as_path(path)
    missing = _checks.choice(missing, "missing", _MISSING_MODES)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot be read as a NumPy .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path}: holds a single array (.npy), expected an .npz archive with keys 'x' (and 'y', 'lengths')"
        )
    with archive:
        keys = list(archive.files)
        if "x" not in keys:
            raise ValueError(
                f"{path}: no key 'x', expected 'x' with the sequences, (N, T, F) or (N, T); the archive has {keys}"
            )
        x = _npz_key(archive, "x", path)
        lengths = _npz_key(archive, "lengths", path) if "lengths" in keys else None
        y = _npz_key(archive, "y", path) if "y" in keys else None

    if x.dtype.kind not in "iuf":
        raise ValueError(f"{path}: key 'x' has dtype {x.dtype}, expected real numbers (float or int)")
    if x.ndim not in (2, 3) or 0 in x.shape:
        raise ValueError(
            f"{path}: key 'x' has shape {tuple(x.shape)}, expected (N, T, F) or (N, T) with every size at least 1"
        )
    flat = x.ndim == 2
    x = np.asarray(x, dtype=np.float64)
    if flat:
        x = x[:, :, None]
    n, steps = x.shape[:2]
    if lengths is None:
        lengths = np.full(n, steps, dtype=np.int64)
    else:
        if lengths.dtype.kind not in "iu" or lengths.shape != (n,):
            raise ValueError(
                f"{path}: key 'lengths' has shape {tuple(lengths.shape)} and dtype {lengths.dtype}, "
                f"expected ({n},) integers (one length per sequence of x)"
            )
        bad = np.flatnonzero((lengths < 1) | (lengths > steps))
        if bad.size:
            raise ValueError(
                f"{path}: key 'lengths' has lengths[{bad[0]}] = {lengths[bad[0]]}, expected 1..{steps} (the T of x)"
            )
        lengths = lengths.astype(np.int64)

    labels = classes = None
    if y is not None:
        if y.shape == (n,):
            if y.dtype.kind in "iu":
                classes = [str(c) for c in np.unique(y)]
                labels = [str(v) for v in y.tolist()]
            elif y.dtype.kind == "U":
                labels = y.tolist()
                classes = sorted(set(labels))
            else:
                raise ValueError(
                    f"{path}: key 'y' has dtype {y.dtype}, expected integer or string class labels "
                    "(regression targets are not supported)"
                )
        elif y.shape == (n, steps):
            if y.dtype.kind not in "iu":
                raise ValueError(f"{path}: key 'y' has per-step tags of dtype {y.dtype}, expected integers")
            labels = [y[i, : lengths[i]].astype(np.int64) for i in range(n)]
        else:
            raise ValueError(
                f"{path}: key 'y' has shape {tuple(y.shape)}, expected ({n},) class labels or "
                f"({n}, {steps}) per-step tags (x is {'(N, T)' if flat else '(N, T, F)'} = "
                f"{(n, steps) if flat else tuple(x.shape)})"
            )

    def index(i, t, d):
        t = ":" if t is None else t
        return f"x[{i}, {t}]" if flat else f"x[{i}, {t}, {d}]"

    sequences, filled = [], 0
    for i in range(n):
        series = x[i, : lengths[i]].copy()
        infinite = np.argwhere(np.isinf(series))
        if infinite.size:
            t, d = (int(v) for v in infinite[0])
            raise ValueError(
                f"{path}: key 'x' has {index(i, t, d)} = {series[t, d]}, expected finite numbers (NaN "
                "marks a missing value)"
            )
        filled += _fill_missing(series, missing, lambda t, d, i=i: f"{path}: key 'x', {index(i, t, d)}")
        sequences.append(series)
    return SequenceSet(sequences, labels, classes, path.stem, x.shape[2], None, filled, [str(path)])


_WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 1, 3, 0xFFFE
_WAVE_NAMES = {
    2: "Microsoft ADPCM",
    6: "A-law",
    7: "mu-law",
    17: "IMA ADPCM",
    49: "GSM 6.10",
    80: "MPEG",
    85: "MPEG layer 3",
}
_KSDATAFORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # the GUID of a subformat after its tag


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A WAVE file's samples mixed down to mono (float64, integers scaled to [-1, 1)) and its sample rate, from
    the RIFF chunks parsed with ``struct``."""
    blob = path.read_bytes()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file (starts with {blob[:12]!r}), expected 'RIFF' <size> 'WAVE'")
    chunks: dict[bytes, bytes] = {}
    offset = 12
    while offset + 8 <= len(blob):
        name, size = struct.unpack_from("<4sI", blob, offset)
        body = blob[offset + 8 : offset + 8 + size]
        if len(body) < size:
            raise ValueError(
                f"{path}: truncated: chunk {name.decode('latin-1')!r} at byte {offset} declares {size} "
                f"bytes, only {len(body)} remain"
            )
        chunks.setdefault(name, body)
        offset += 8 + size + (size & 1)
    fmt, data = chunks.get(b"fmt "), chunks.get(b"data")
    if fmt is None or data is None:
        raise ValueError(
            f"{path}: no {'fmt' if fmt is None else 'data'!r} chunk, expected a WAVE file with 'fmt ' and 'data' chunks"
        )
    if len(fmt) < 16:
        raise ValueError(f"{path}: the 'fmt ' chunk has {len(fmt)} bytes, expected at least 16")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_EXTENSIBLE:
        if len(fmt) < 40:
            raise ValueError(f"{path}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has {len(fmt)} bytes, expected 40")
        guid = fmt[24:40]
        if guid[2:] != _KSDATAFORMAT_TAIL:
            raise ValueError(
                f"{path}: WAVE_FORMAT_EXTENSIBLE with subformat GUID {guid.hex()}, expected PCM or IEEE float"
            )
        tag = struct.unpack_from("<H", guid)[0]
    if tag not in (_WAVE_PCM, _WAVE_FLOAT):
        kind = _WAVE_NAMES.get(tag, "unknown")
        raise ValueError(
            f"{path}: format tag {tag} ({kind}) is compressed or not supported, expected PCM (1) or IEEE float (3)"
        )
    if (tag == _WAVE_PCM and bits not in (8, 16, 24, 32)) or (tag == _WAVE_FLOAT and bits not in (32, 64)):
        expected = "8, 16, 24 or 32 for PCM" if tag == _WAVE_PCM else "32 or 64 for IEEE float"
        raise ValueError(f"{path}: {bits} bits per sample, expected {expected}")
    if channels == 0 or rate == 0:
        raise ValueError(
            f"{path}: {channels} channel(s) at {rate} Hz, expected at least one channel and a positive sample rate"
        )
    width = bits // 8
    if block_align != channels * width:
        raise ValueError(
            f"{path}: block align {block_align}, expected {channels * width} ({channels} channel(s) of {bits} bits)"
        )
    if len(data) % block_align:
        raise ValueError(
            f"{path}: truncated: the 'data' chunk has {len(data)} bytes, not a whole number of "
            f"{block_align}-byte frames"
        )
    if not data:
        raise ValueError(f"{path}: the 'data' chunk is empty, expected samples")
    if tag == _WAVE_FLOAT:
        samples = np.frombuffer(data, f"<f{width}").astype(np.float64)
        if not np.isfinite(samples).all():
            raise ValueError(f"{path}: has NaN or infinite samples, expected finite numbers")
    elif width == 1:
        samples = (np.frombuffer(data, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 3:
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        samples = ((value ^ 0x800000) - 0x800000) / float(1 << 23)
    else:
        samples = np.frombuffer(data, f"<i{width}") / float(1 << (bits - 1))
    return samples.reshape(-1, channels).mean(axis=1), rate


_RESAMPLE_ZEROS = 32  # zero crossings of the sinc kept on each side
_RESAMPLE_ROLLOFF = 0.9  # the low-pass cutoff as a fraction of the lower of the two Nyquist frequencies
_RESAMPLE_BLOCK = 4096  # outputs computed at a time


def _resample(signal: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``signal`` sampled at ``rate`` resampled to ``new_rate`` by band-limited (windowed-sinc) interpolation:
    each output sample is the input convolved with a Blackman-windowed sinc low-pass at 0.9 times the lower Nyquist
    frequency (32 zero crossings each side, each phase's taps normalised to sum to 1), evaluated at the output's
    exact position n * rate / new_rate; samples beyond the ends count as zero. ceil(T * new_rate / rate) outputs."""
    step = math.gcd(rate, new_rate)
    up, down = new_rate // step, rate // step
    cutoff = _RESAMPLE_ROLLOFF * min(1.0, up / down)  # as a fraction of the input's Nyquist frequency
    half = int(math.ceil(_RESAMPLE_ZEROS / cutoff))
    taps = np.arange(-half + 1, half + 1)

    def kernels(phase: np.ndarray) -> np.ndarray:
        distance = phase[:, None] / up - taps[None, :]  # from each output to its taps, in input samples
        window = 0.42 + 0.5 * np.cos(np.pi * distance / half) + 0.08 * np.cos(2 * np.pi * distance / half)
        kernel = np.sinc(cutoff * distance) * window
        return kernel / kernel.sum(axis=1, keepdims=True)

    table = kernels(np.arange(up)) if up <= _RESAMPLE_BLOCK else None  # the polyphase filter bank, when small
    padded = np.concatenate([np.zeros(half), signal, np.zeros(half + 1)])
    out = np.empty(-(-len(signal) * up // down))
    for begin in range(0, len(out), _RESAMPLE_BLOCK):
        n = np.arange(begin, min(begin + _RESAMPLE_BLOCK, len(out)), dtype=np.int64)
        start, phase = np.divmod(n * down, up)
        kernel = kernels(phase) if table is None else table[phase]
        out[begin : begin + len(n)] = np.einsum("ij,ij->i", padded[start[:, None] + taps[None, :] + half], kernel)
    return out


def _wav_files(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.iterdir() if f.is_file() and f.suffix.lower() == ".wav" and not f.name.startswith(".")
    )


def read_wav_folder(path, sample_rate: int | None = None) -> SequenceSet:
    """Read a folder of audio clips for classification: one subfolder per class (the class names are the
    subfolder names, sorted), each with ``.wav`` files (read in sorted order); hidden entries are skipped.

    The RIFF chunks are parsed with ``struct`` (Python 3.11's ``wave`` reads only format 1, integer PCM): PCM of
    8 (unsigned), 16, 24 and 32 bits and IEEE float of 32 and 64 bits, as format 1 or 3 or as
    WAVE_FORMAT_EXTENSIBLE with a PCM or float subformat. Integer samples are scaled to [-1, 1) (divided by 2**(bits
    - 1)); float samples are taken as written. Several channels are mixed down to mono by averaging; ``x[i]`` is
    (T_i, 1) float64.

    Every file must have the same sample rate unless ``sample_rate`` (Hz) is given; then every file at another
    rate is resampled to it by band-limited interpolation: a Blackman-windowed sinc low-pass at 0.9 times the lower
    of the two Nyquist frequencies (32 zero crossings on each side), evaluated at each output sample's exact time.

    A file that is not RIFF/WAVE, is truncated (a chunk shorter than declared, or a partial frame), is compressed
    (ADPCM, mu-law, MP3, ...) or has no samples, files with different rates, a .wav file outside a class
    subfolder, a class subfolder without .wav files, a folder without class subfolders and a folder with only one
    class raise ValueError naming the file or folder.
    """
    path = _as_path(path)
    if sample_rate is not None:
        sample_rate = _checks.integer(sample_rate, "sample_rate", low=1)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder")
    if not path.is_dir():
        raise ValueError(f"{path}: is a file, expected a folder with one subfolder of .wav files per class")
    stray = _wav_files(path)
    if stray:
        raise ValueError(
            f"{stray[0]}: a .wav file outside a class subfolder, expected every clip in the subfolder "
            "named after its class"
        )
    folders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise ValueError(f"{path}: no class subfolders, expected one subfolder of .wav files per class")
    clips = []
    for folder in folders:
        files = _wav_files(folder)
        if not files:
            raise ValueError(f"{folder}: no .wav files, expected at least one clip for class {folder.name!r}")
        clips += [(folder.name, file) for file in files]
    if len(folders) < 2:
        raise ValueError(f"{path}: only one class subfolder ({folders[0].name!r}), expected at least two classes")

    x, rates = [], []
    for _, file in clips:
        samples, rate = _read_wav(file)
        if sample_rate is None and rates and rate != rates[0]:
            raise ValueError(
                f"{file}: sample rate {rate} Hz, but {clips[0][1]} has {rates[0]} Hz; expected one "
                "rate for every file (sample_rate= resamples every file to one rate)"
            )
        if sample_rate is not None and rate != sample_rate:
            samples = _resample(samples, rate, sample_rate)
        x.append(samples[:, None])
        rates.append(rate)
    return SequenceSet(
        x,
        [label for label, _ in clips],
        [f.name for f in folders],
        path.name,
        1,
        sample_rate if sample_rate is not None else rates[0],
        0,
        [str(f) for _, f in clips],
    )


__all__ = [
    "TaggedSentences",
    "read_conll",
    "write_conll",
    "read_labelled_lines",
    "read_class_files",
    "Gap",
    "GapReport",
    "TimeSeries",
    "read_time_series",
    "bucket_batches",
    "pad_batch",
    "SequenceSet",
    "read_ts",
    "read_npz",
    "read_wav_folder",
]
