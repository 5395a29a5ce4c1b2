"""Readers for the data of sequence tasks, and batching of variable-length sequences.

- tagging: ``read_conll`` / ``write_conll`` (CoNLL column files);
- classification: ``read_labelled_lines`` (``label<TAB>text``) and ``read_class_files`` (one file per class);
- forecasting: ``read_time_series`` (CSV, with gaps reported and filled by linear interpolation);
- batching: ``bucket_batches`` (groups of similar length) and ``pad_batch`` (time-major by default, the layout
  the recurrent layers take).

Every reader takes ``encoding=``; bytes that do not decode raise ValueError naming the file, a missing file
FileNotFoundError, and a file without data ValueError.
"""

from __future__ import annotations

import codecs
import csv
import numbers
import os
import re
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
        raise ValueError(f"{path}: byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start} is not valid "
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


def read_conll(path, word_column: int = 0, tag_column: int | None = -1, feature_columns: Sequence[int] = (),
               encoding: str = "utf-8") -> TaggedSentences:
    """Read a CoNLL column file: one token per line, columns separated by whitespace, a blank line between
    sentences; ``-DOCSTART-`` lines are skipped. Column indices may be negative (-1 is the last column);
    ``tag_column=None`` reads untagged text. A line with too few columns, or with another number of columns
    than the first token line, raises ValueError naming the file and the line."""
    word_column = _column_index(word_column, "word_column")
    tag_column = None if tag_column is None else _column_index(tag_column, "tag_column")
    feature_columns = [_column_index(c, f"feature_columns[{k}]") for k, c in
                       enumerate(_as_list(feature_columns, "feature_columns", "a list of column indices"))]
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
            raise ValueError(f"{path}: line {number} has {len(columns)} column(s), expected {width} like line "
                             f"{first}: {line!r}")
        if len(columns) < needed:
            raise ValueError(f"{path}: line {number} has {len(columns)} column(s), expected at least {needed} "
                             f"(word_column={word_column}, tag_column={tag_column}, "
                             f"feature_columns={tuple(feature_columns)}): {line!r}")
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
            raise ValueError(f"predicted_tags[{i}]: got {len(predicted)} tags, expected {len(lines)} "
                             f"(the length of sentence {i})")
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
            raise ValueError(f"paths[{k}]: {path} has the label {label!r} of paths[{seen[label]}], "
                             "expected one file per class with distinct names")
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
        raise ValueError(f"{path}: line {lines[k]} has date {days[k]}, expected a date after {days[k - 1]} "
                         "(dates must increase)")
    mixed = [k for k, r in enumerate(resolutions) if r != resolutions[0]]
    if mixed:
        raise ValueError(f"{path}: line {lines[mixed[0]]} writes its date with a different precision than line "
                         f"{lines[0]}, expected one date format")
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
        raise ValueError(f"{path}: dates are a multiple of {month_steps} months apart, expected a monthly or "
                         "yearly series")
    smallest = int(steps.min())
    if smallest == 1:
        return "daily"
    if smallest % 7 == 0:
        off_grid = np.flatnonzero(steps % 7)
        if off_grid.size:
            k = int(off_grid[0]) + 1
            raise ValueError(f"{path}: line {lines[k]} has date {days[k]}, which is not a whole number of weeks "
                             f"after {days[0]}")
        return "weekly"
    raise ValueError(f"{path}: the smallest step between dates is {smallest} days, expected a daily, weekly, "
                     "monthly or yearly series")


def _resolve_column(column, header: list[str], name: str, path) -> int:
    if isinstance(column, str):
        if column not in header:
            raise ValueError(f"{name}: got {column!r}, expected one of the columns of {path}: {header}")
        return header.index(column)
    index = _column_index(column, name)
    if not -len(header) <= index < len(header):
        raise ValueError(f"{name}: got {index}, expected a column index in {-len(header)}..{len(header) - 1} "
                         f"({path} has {len(header)} columns)")
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
        raise ValueError(f"column: got {len(value_columns)} columns with a date column, expected 12 (one per month "
                         "of each row's year)")
    return value_columns, date_index


def _date_grid(row_dates: list[np.datetime64], resolutions: list[str], row_lines: list[int], per_row: int,
               path) -> tuple[np.ndarray, np.ndarray, str]:
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


def _fill_gaps(grid: np.ndarray, gaps: list[tuple[int, Gap]], names: str,
               path) -> tuple[np.ndarray, GapReport, slice]:
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
    values = grid[first:last + 1].copy()
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
    gaps += [(int(pos), Gap("missing date", None, header[value_columns[pos % len(value_columns)]], None, "", None))
             for pos in np.flatnonzero(missing)]
    if dates is not None:
        for position, gap in gaps:
            gap.date = dates[position]
    values, report, kept = _fill_gaps(grid, gaps, ", ".join(header[i] for i in value_columns), path)
    return TimeSeries(values, None if dates is None else dates[kept], frequency, report)


# ----- batching ---------------------------------------------------------------------------------------------
def bucket_batches(lengths, batch_size: int, shuffle: bool = True, seed: int | None = None,
                   pool_batches: int = 100) -> list[np.ndarray]:
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
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    pool_size = pool_batches * batch_size
    batches = []
    for start in range(0, len(order), pool_size):
        pool = order[start:start + pool_size]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += [pool[i:i + batch_size] for i in range(0, len(pool), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def _pad_dtype_check(pad_value, dtype: np.dtype) -> None:
    if isinstance(pad_value, bool) or not isinstance(pad_value, numbers.Real):
        raise TypeError(f"pad_value: got {pad_value!r} ({type(pad_value).__name__}), expected a number")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (np.isfinite(pad_value) and pad_value == int(pad_value) and info.min <= pad_value <= info.max):
            raise ValueError(f"pad_value: got {pad_value!r}, expected an integer in {info.min}..{info.max} for "
                             f"sequences of dtype {dtype}")
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
            raise ValueError(f"sequences[{i}]: got shape {tuple(arr.shape)}, expected (T,) + "
                             f"{tuple(arrays[0].shape[1:])} like sequences[0]")
        if arr.dtype.kind == "f":
            _checks.check_finite(arr, f"sequences[{i}]")
        arrays.append(arr)
    # An empty list becomes float64 in numpy; it must not turn a batch of token ids into floats.
    dtype = np.result_type(*([a for a in arrays if a.size] or arrays))
    _pad_dtype_check(pad_value, dtype)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    padded = np.full((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), pad_value, dtype=dtype)
    for row, arr in zip(padded, arrays):
        row[:len(arr)] = arr
    if time_major:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))
    return padded, lengths


__all__ = ["TaggedSentences", "read_conll", "write_conll", "read_labelled_lines", "read_class_files", "Gap",
           "GapReport", "TimeSeries", "read_time_series", "bucket_batches", "pad_batch"]
