"""Readers on small hand-written files, the shared time series, and batching."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rnnfast import data

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O


Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER"""


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ----- CoNLL ------------------------------------------------------------------------------------------------
def test_read_conll_sentences_tags_and_features(tmp_path):
    result = data.read_conll(write(tmp_path, "a.conll", CONLL), feature_columns=(1, 2))
    assert len(result) == 2
    assert result.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert result.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert result.features == [[["NNP", "B-NP"], ["VBZ", "B-VP"]], [["NNP", "B-NP"], ["NNP", "I-NP"]]]


def test_read_conll_other_columns(tmp_path):
    path = write(tmp_path, "a.conll", CONLL)
    chunks = data.read_conll(path, tag_column=2)
    assert chunks.tags == [["B-NP", "B-VP"], ["B-NP", "I-NP"]]
    assert chunks.features == [[[], []], [[], []]]
    untagged = data.read_conll(path, tag_column=None)
    assert untagged.tags is None and untagged.words[1] == ["Peter", "Blackburn"]


def test_read_conll_too_few_columns_names_path_and_line(tmp_path):
    path = write(tmp_path, "bad.conll", "EU B-ORG\nrejects O\n\nPeter\n")
    with pytest.raises(ValueError, match=r"bad\.conll: line 4 has 1 column\(s\), expected 2 like line 1"):
        data.read_conll(path)
    with pytest.raises(ValueError, match=r"bad\.conll: line 1 has 2 column\(s\), expected at least 3"):
        data.read_conll(write(tmp_path, "bad.conll", "EU B-ORG\nrejects O\n"), tag_column=2)
    with pytest.raises(ValueError, match="line 1 has 2 column.*expected at least 4"):
        data.read_conll(path, feature_columns=(3,))


def test_read_conll_refuses_a_line_with_another_number_of_columns(tmp_path):
    """A line that lacks its part-of-speech column would otherwise have its word read as the POS feature and the
    chunk tag as the tag of a shifted layout: the file is refused, naming the line."""
    path = write(tmp_path, "short.conll", "EU NNP B-NP\nrejects VBZ B-VP\n\nPeter B-NP\nsleeps VBZ B-VP\n")
    with pytest.raises(ValueError, match=r"short\.conll: line 4 has 2 column\(s\), expected 3 like line 1"):
        data.read_conll(path, feature_columns=(1,))
    with pytest.raises(ValueError, match="line 4"):
        data.read_conll(path)


def test_read_conll_encoding(tmp_path):
    path = write(tmp_path, "latin.conll", "café B-LOC\nà O\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin\.conll.*not valid utf-8.*encoding="):
        data.read_conll(path)
    assert data.read_conll(path, encoding="latin-1").words == [["café", "à"]]
    with pytest.raises(ValueError, match="encoding"):
        data.read_conll(path, encoding="no-such-codec")


def test_read_conll_missing_empty_and_docstart_only(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.read_conll(tmp_path / "absent.conll")
    with pytest.raises(ValueError, match="empty"):
        data.read_conll(write(tmp_path, "empty.conll", "\n\n"))
    with pytest.raises(ValueError, match="no tokens"):
        data.read_conll(write(tmp_path, "doc.conll", "-DOCSTART- -X- O\n\n"))


def test_read_conll_argument_checks(tmp_path):
    path = write(tmp_path, "a.conll", CONLL)
    with pytest.raises(ValueError, match="tag_column"):
        data.read_conll(path, word_column=1, tag_column=1)
    with pytest.raises(TypeError, match="word_column"):
        data.read_conll(path, word_column="0")
    with pytest.raises(TypeError, match=r"feature_columns\[0\]"):
        data.read_conll(path, feature_columns=("POS",))
    with pytest.raises(TypeError, match="path"):
        data.read_conll(3)


def test_write_conll_appends_predictions_in_the_input_format(tmp_path):
    source = write(tmp_path, "in.conll", "EU\tNNP\tB-ORG\nrejects\tVBZ\tO\n\nPeter NNP B-PER\n")
    sentences = data.read_conll(source)
    out = tmp_path / "out.conll"
    data.write_conll(out, sentences, [["B-ORG", "B-ORG"], ["O"]])
    assert out.read_text() == "EU\tNNP\tB-ORG\tB-ORG\nrejects\tVBZ\tO\tB-ORG\n\nPeter NNP B-PER O\n\n"
    again = data.read_conll(out, tag_column=-2)
    assert again.words == sentences.words and again.tags == sentences.tags
    assert data.read_conll(out).tags == [["B-ORG", "B-ORG"], ["O"]]


def test_write_conll_encoding_and_bad_predictions(tmp_path):
    sentences = data.read_conll(write(tmp_path, "in.conll", "café B-LOC\n"))
    out = tmp_path / "out.conll"
    data.write_conll(out, sentences, [["O"]], encoding="latin-1")
    assert out.read_bytes() == "café B-LOC O\n\n".encode("latin-1")
    with pytest.raises(ValueError, match="predicted_tags: got 2 sentences, expected 1"):
        data.write_conll(out, sentences, [["O"], ["O"]])
    with pytest.raises(ValueError, match=r"predicted_tags\[0\]: got 2 tags, expected 1"):
        data.write_conll(out, sentences, [["O", "O"]])
    with pytest.raises(ValueError, match=r"predicted_tags\[0\]\[0\]"):
        data.write_conll(out, sentences, [["B PER"]])
    with pytest.raises(TypeError, match="sentences"):
        data.write_conll(out, [["café"]], [["O"]])


# ----- text classification ----------------------------------------------------------------------------------
def test_read_labelled_lines(tmp_path):
    path = write(tmp_path, "train.tsv", "pos\tgreat film\n\nneg\tawful\tand boring\n")
    texts, labels = data.read_labelled_lines(path)
    assert texts == ["great film", "awful\tand boring"]
    assert labels == ["pos", "neg"]


def test_read_labelled_lines_errors_and_encoding(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.tsv: line 2 .*label<TAB>text"):
        data.read_labelled_lines(write(tmp_path, "bad.tsv", "pos\tgood\nno tab here\n"))
    latin = write(tmp_path, "latin.tsv", "pos\tnaïve\n", encoding="latin-1")
    with pytest.raises(ValueError, match="encoding="):
        data.read_labelled_lines(latin)
    assert data.read_labelled_lines(latin, encoding="latin-1") == (["naïve"], ["pos"])
    with pytest.raises(ValueError, match="empty"):
        data.read_labelled_lines(write(tmp_path, "empty.tsv", ""))


def test_read_class_files(tmp_path):
    pos = write(tmp_path, "pos.txt", "good\n\nfine film\n")
    neg = write(tmp_path, "neg.txt", "bad\n")
    assert data.read_class_files([pos, str(neg)]) == (["good", "fine film", "bad"], ["pos", "pos", "neg"])
    latin = write(tmp_path, "meh.txt", "déjà vu\n", encoding="latin-1")
    assert data.read_class_files([latin], encoding="latin-1") == (["déjà vu"], ["meh"])
    with pytest.raises(ValueError, match=r"meh\.txt.*encoding="):
        data.read_class_files([latin])


def test_read_class_files_errors(tmp_path):
    pos = write(tmp_path, "pos.txt", "good\n")
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match=r"paths\[1\].*'pos'"):
        data.read_class_files([pos, write(tmp_path / "other", "pos.txt", "fine\n")])
    with pytest.raises(TypeError, match="paths"):
        data.read_class_files(str(pos))
    with pytest.raises(ValueError, match="paths"):
        data.read_class_files([])
    with pytest.raises(FileNotFoundError):
        data.read_class_files([tmp_path / "neg.txt"])


# ----- time series ------------------------------------------------------------------------------------------
def test_daily_gaps_are_reported_and_interpolated(tmp_path):
    path = write(
        tmp_path,
        "s.csv",
        "date,value\n2020-01-01,1.0\n2020-01-02,\n2020-01-03,3.0\n2020-01-05,7.0\n2020-01-06,abc\n2020-01-07,9.0\n",
    )
    series = data.read_time_series(path, "value", date_column="date")
    assert series.frequency == "daily"
    # 01-02 lies halfway between 1 and 3, 01-04 between 3 and 7, 01-06 between 7 and 9.
    np.testing.assert_array_equal(series.values, [1.0, 2.0, 3.0, 5.0, 7.0, 8.0, 9.0])
    np.testing.assert_array_equal(series.dates, np.arange("2020-01-01", "2020-01-08", dtype="datetime64[D]"))
    gaps = series.report.filled
    assert [(g.reason, g.line, g.index) for g in gaps] == [
        ("empty cell", 3, 1),
        ("missing date", None, 3),
        ("non-numeric cell", 6, 5),
    ]
    assert gaps[1].date == np.datetime64("2020-01-04") and gaps[2].text == "abc"
    assert series.report.count == 3 and series.report.dropped == []
    assert series.report.counts() == {"empty cell": 1, "missing date": 1, "non-numeric cell": 1}
    assert "3 gap(s)" in str(series.report) and "line 3" in str(series.report)


def test_gaps_at_the_ends_are_dropped(tmp_path):
    path = write(tmp_path, "s.csv", "t,x\n2001,\n2002,4\n2003,nan\n2004,8\n2005,x\n")
    series = data.read_time_series(path, "x", date_column="t")
    assert series.frequency == "yearly"
    np.testing.assert_array_equal(series.values, [4.0, 6.0, 8.0])
    np.testing.assert_array_equal(series.dates, np.array(["2002", "2003", "2004"], dtype="datetime64[Y]"))
    assert [g.line for g in series.report.dropped] == [2, 6]
    assert all(g.index is None for g in series.report.dropped)
    assert [g.index for g in series.report.filled] == [1]


def test_weekly_monthly_and_undated_series(tmp_path):
    weekly = write(tmp_path, "w.csv", "d,v\n20200101,1\n20200108,2\n20200122,4\n")
    series = data.read_time_series(weekly, "v", date_column="d")
    assert series.frequency == "weekly"
    np.testing.assert_array_equal(series.values, [1.0, 2.0, 3.0, 4.0])
    assert series.dates[2] == np.datetime64("2020-01-15")

    monthly = write(tmp_path, "m.csv", "month;v\n2020-01,10\n2020-02,20\n2020-04,40\n".replace(";", ","))
    series = data.read_time_series(monthly, 1, date_column=0)
    assert series.frequency == "monthly" and series.dates.dtype == np.dtype("datetime64[M]")
    np.testing.assert_array_equal(series.values, [10.0, 20.0, 30.0, 40.0])

    undated = write(tmp_path, "u.csv", "a,b\n1,10\n2,\n3,30\n")
    series = data.read_time_series(undated, "b")
    assert series.dates is None and series.frequency is None
    np.testing.assert_array_equal(series.values, [10.0, 20.0, 30.0])
    assert series.report.filled[0].line == 3


# Values 0, 1, 2 on three dates with one date missing, either between the first two or the last two.
@pytest.mark.parametrize(
    "dates, frequency, missing, values",
    [
        (["2020-01-15", "2020-02-15", "2020-04-15"], "monthly", "2020-03", [0.0, 1.0, 1.5, 2.0]),
        (["2020-01-31", "2020-02-29", "2020-04-30"], "monthly", "2020-03", [0.0, 1.0, 1.5, 2.0]),
        (["2000-06-30", "2002-06-30", "2003-06-30"], "yearly", "2001", [0.0, 0.5, 1.0, 2.0]),
        (["2020/03/01", "2020/03/02", "2020/03/04"], "daily", "2020-03-03", [0.0, 1.0, 1.5, 2.0]),
    ],
)
def test_frequency_of_full_dates(tmp_path, dates, frequency, missing, values):
    path = write(tmp_path, "s.csv", "d,v\n" + "".join(f"{d},{k}\n" for k, d in enumerate(dates)))
    series = data.read_time_series(path, "v", date_column="d")
    assert series.frequency == frequency
    assert [str(g.date) for g in series.report.filled] == [missing]
    np.testing.assert_array_equal(series.values, values)


@pytest.mark.parametrize(
    "dates, message",
    [
        (["2020-01-01", "2020-04-01", "2020-07-01"], "multiple of 3 months"),
        (["2020", "2021-01"], "line 3 writes its date with a different precision"),
        (["2020-01-01"], "at least 2"),
    ],
)
def test_frequency_errors(tmp_path, dates, message):
    path = write(tmp_path, "s.csv", "d,v\n" + "".join(f"{d},1\n" for d in dates))
    with pytest.raises(ValueError, match=message):
        data.read_time_series(path, "v", date_column="d")


def test_wide_table_unrolls_years_into_months(tmp_path):
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    rows = [
        '"YEAR",' + ",".join(f'"{m}"' for m in months),
        "2000," + ",".join(str(v) for v in range(1, 13)),
        "2002," + ",".join(str(v) for v in range(25, 37)),
    ]
    path = write(tmp_path, "wide.csv", "\n".join(rows) + "\n")
    series = data.read_time_series(path, months, date_column="YEAR")
    # 2001 is missing: its 12 months lie on the straight line from 12 (Dec 2000) to 25 (Jan 2002).
    np.testing.assert_array_equal(series.values, np.arange(1.0, 37.0))
    assert series.frequency == "monthly"
    assert series.dates[0] == np.datetime64("2000-01") and series.dates[-1] == np.datetime64("2002-12")
    missing = series.report.filled
    assert len(missing) == 12 and {g.reason for g in missing} == {"missing date"}
    assert [g.column for g in missing[:2]] == ["JAN", "FEB"] and missing[0].date == np.datetime64("2001-01")
    with pytest.raises(ValueError, match="12"):
        data.read_time_series(path, months[:6], date_column="YEAR")


def test_time_series_errors(tmp_path):
    path = write(tmp_path, "s.csv", "date,value\n2020-01-01,1\n2020-01-03,2\n")
    with pytest.raises(ValueError, match="column: got 'price'.*'date', 'value'"):
        data.read_time_series(path, "price")
    with pytest.raises(ValueError, match="date_column: got 5"):
        data.read_time_series(path, "value", date_column=5)
    decreasing = write(tmp_path, "dec.csv", "d,v\n2020-01-02,1\n2020-01-01,2\n")
    with pytest.raises(ValueError, match="line 3.*increase"):
        data.read_time_series(decreasing, "v", date_column="d")
    irregular = write(tmp_path, "irr.csv", "d,v\n2020-01-01,1\n2020-01-04,2\n")
    with pytest.raises(ValueError, match="smallest step between dates is 3 days"):
        data.read_time_series(irregular, "v", date_column="d")
    off_weekly = write(tmp_path, "off.csv", "d,v\n2020-01-01,1\n2020-01-08,2\n2020-01-18,3\n")
    with pytest.raises(ValueError, match="line 4.*weeks"):
        data.read_time_series(off_weekly, "v", date_column="d")
    bad_date = write(tmp_path, "bd.csv", "d,v\n2020-01-01,1\n2020-13-01,2\n")
    with pytest.raises(ValueError, match="line 3.*'2020-13-01'"):
        data.read_time_series(bad_date, "v", date_column="d")
    no_numbers = write(tmp_path, "nn.csv", "d,v\n2020-01-01,\n2020-01-02,n/a\n")
    with pytest.raises(ValueError, match="no numeric value"):
        data.read_time_series(no_numbers, "v", date_column="d")
    with pytest.raises(ValueError, match="no data rows"):
        data.read_time_series(write(tmp_path, "h.csv", "d,v\n"), "v")
    latin = write(tmp_path, "latin.csv", "température\n1\n2\n", encoding="latin-1")
    with pytest.raises(ValueError, match="encoding="):
        data.read_time_series(latin, 0)
    np.testing.assert_array_equal(data.read_time_series(latin, "température", encoding="latin-1").values, [1, 2])


MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def test_shared_co2_weekly_with_59_empty_cells(shared_data):
    path = shared_data / "timeseries" / "co2.csv"
    series = data.read_time_series(path, "co2", date_column="date")
    # shared/data/README.md: 2,284 weekly rows from 1958-03-29 to 2001-12-29, 59 empty co2 cells.
    assert series.frequency == "weekly" and len(series) == 2284
    assert series.dates[0] == np.datetime64("1958-03-29") and series.dates[-1] == np.datetime64("2001-12-29")
    assert series.report.counts() == {"empty cell": 59} and not series.report.dropped
    assert np.isfinite(series.values).all()
    # The first gap is one empty week on line 8, between the values of lines 7 and 9.
    with open(path) as f:
        rows = list(csv.reader(f))
    first = series.report.filled[0]
    assert (first.line, first.index) == (8, 6) and rows[7][1] == ""
    assert series.values[6] == pytest.approx((float(rows[6][1]) + float(rows[8][1])) / 2)


def test_shared_sunspots_yearly(shared_data):
    series = data.read_time_series(shared_data / "timeseries" / "sunspots.csv", "SUNACTIVITY", date_column="YEAR")
    # 309 yearly rows, 1700 to 2008.
    assert series.frequency == "yearly" and len(series) == 309 and series.report.count == 0
    assert series.dates[0] == np.datetime64("1700") and series.dates[-1] == np.datetime64("2008")
    assert series.values[:3].tolist() == [5.0, 11.0, 16.0]


def test_shared_elnino_monthly(shared_data):
    series = data.read_time_series(shared_data / "timeseries" / "elnino.csv", MONTHS, date_column="YEAR")
    # 61 years unrolled into 732 months, 1950-01 to 2010-12.
    assert series.frequency == "monthly" and len(series) == 732 and series.report.count == 0
    assert series.dates[0] == np.datetime64("1950-01") and series.dates[-1] == np.datetime64("2010-12")
    assert series.values[0] == 23.11 and series.values[13] == 25.28 and series.values[-1] == 22.07


# ----- batching ---------------------------------------------------------------------------------------------
def padding_ratio(batches, lengths):
    return sum(len(b) * lengths[b].max() for b in batches) / lengths.sum()


def test_bucket_batches_cover_every_index_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(1, 51, size=1000)
    batches = data.bucket_batches(lengths, 16, seed=1)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    sizes = [len(b) for b in batches]
    assert sizes.count(16) == len(batches) - 1 and min(sizes) == 1000 % 16
    random_batches = np.array_split(np.random.default_rng(2).permutation(1000), len(batches))
    assert padding_ratio(batches, lengths) < 1.05 < 1.3 < padding_ratio(random_batches, lengths)
    # Shuffled: consecutive batches are not in length order.
    assert not all(lengths[a].max() <= lengths[b].min() for a, b in zip(batches, batches[1:]))


def test_bucket_batches_pools_seed_and_order():
    lengths = np.random.default_rng(0).integers(1, 100, size=300)
    a = data.bucket_batches(lengths, 8, seed=3, pool_batches=5)
    b = data.bucket_batches(lengths, 8, seed=3, pool_batches=5)
    c = data.bucket_batches(lengths, 8, seed=4, pool_batches=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(300))
    # Within a batch the indices come sorted by length.
    assert all((np.diff(lengths[batch]) >= 0).all() for batch in a)
    ordered = data.bucket_batches(lengths, 8, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(ordered), np.argsort(lengths, kind="stable"))


def test_bucket_batches_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        data.bucket_batches([3, 4], 0)
    with pytest.raises(ValueError, match="lengths"):
        data.bucket_batches([3, -1], 2)
    with pytest.raises(ValueError, match="lengths.*empty"):
        data.bucket_batches([], 2)
    with pytest.raises(ValueError, match="lengths.*1-d"):
        data.bucket_batches([[3, 4]], 2)
    with pytest.raises(ValueError, match="seed"):
        data.bucket_batches([3, 4], 2, seed=-1)


def test_pad_batch_time_major_and_batch_major():
    padded, lengths = data.pad_batch([[1, 2, 3], [4], [5, 6]])
    np.testing.assert_array_equal(padded, [[1, 4, 5], [2, 0, 6], [3, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    assert padded.dtype == np.int64 and lengths.dtype == np.int64
    batch_major, _ = data.pad_batch([[1, 2, 3], [4], [5, 6]], pad_value=-1, time_major=False)
    np.testing.assert_array_equal(batch_major, [[1, 2, 3], [4, -1, -1], [5, 6, -1]])
    # An empty sequence keeps integer ids integers.
    ids, lengths = data.pad_batch([[7], []])
    assert ids.dtype == np.int64 and lengths.tolist() == [1, 0]


def test_pad_batch_features():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.full((1, 2), 9.0, dtype=np.float32)
    padded, lengths = data.pad_batch([a, b], pad_value=0.5)
    assert padded.shape == (3, 2, 2) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:, 0], a)
    np.testing.assert_array_equal(padded[:, 1], [[9.0, 9.0], [0.5, 0.5], [0.5, 0.5]])
    assert lengths.tolist() == [3, 1]


def test_pad_batch_bad_input():
    with pytest.raises(ValueError, match=r"sequences\[1\]: got shape \(2, 3\)"):
        data.pad_batch([np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="pad_value"):
        data.pad_batch([[1, 2], [3]], pad_value=0.5)
    with pytest.raises(ValueError, match="sequences.*empty"):
        data.pad_batch([])
    with pytest.raises(TypeError, match=r"sequences\[0\]"):
        data.pad_batch([["a", "b"]])
    with pytest.raises(ValueError, match=r"sequences\[0\].*NaN"):
        data.pad_batch([[1.0, np.nan]])
