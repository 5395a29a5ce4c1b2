"""Readers of sequences of numbers: UEA/UCR .ts files, .npz archives and folders of .wav clips, on small files
written here (values checked exactly), every refused input, and the shared UEA files."""

from __future__ import annotations

import re
import struct
import wave

import numpy as np
import pytest

from rnnfast import data


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refuses(call, *patterns):
    """``call()`` raises ValueError whose message matches every pattern."""
    with pytest.raises(ValueError) as info:
        call()
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))
    return str(info.value)


# ----- .ts --------------------------------------------------------------------------------------------------
UNIVARIATE = """# a comment
#another comment

@problemName Tiny
@TimeStamps false
@MISSING false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true b a
@data
1.5,2,-3.25,4e-2:a
0,0.125, 7 ,-1:b

5,6,7,8:b
"""


def test_read_ts_univariate_equal_length(tmp_path):
    path = write(tmp_path, "tiny.ts", UNIVARIATE)
    result = data.read_ts(path)
    assert isinstance(result, data.SequenceSet) and len(result) == 3
    assert result.problem_name == "Tiny" and result.dimensions == 1 and result.sample_rate is None
    assert result.classes == ["b", "a"]  # the order of @classLabel, not sorted
    assert result.y == ["a", "b", "b"]
    assert result.filled == 0 and result.files == [str(path)]
    assert all(s.dtype == np.float64 and s.shape == (4, 1) for s in result.x)
    np.testing.assert_array_equal(result.x[0][:, 0], [1.5, 2, -3.25, 4e-2])
    np.testing.assert_array_equal(result.x[1][:, 0], [0, 0.125, 7, -1])
    np.testing.assert_array_equal(result.x[2][:, 0], [5, 6, 7, 8])
    np.testing.assert_array_equal(result.lengths, [4, 4, 4])


MULTIVARIATE = """@problemName Multi
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7:8:down
0.5,0.25:-1,-2:up
"""


def test_read_ts_multivariate_unequal_length(tmp_path):
    result = data.read_ts(write(tmp_path, "multi.ts", MULTIVARIATE))
    assert result.dimensions == 2 and result.y == ["up", "down", "up"] and result.classes == ["up", "down"]
    assert [s.shape for s in result.x] == [(3, 2), (1, 2), (2, 2)]
    np.testing.assert_array_equal(result.x[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(result.x[1], [[7, 8]])
    np.testing.assert_array_equal(result.x[2], [[0.5, -1], [0.25, -2]])
    np.testing.assert_array_equal(result.lengths, [3, 1, 2])


def test_read_ts_without_labels_and_without_dimension_headers(tmp_path):
    result = data.read_ts(write(tmp_path, "plain.ts", "@classLabel false\n@data\n1,2:3,4\n5:6\n"))
    assert result.y is None and result.classes is None and result.dimensions == 2
    assert result.problem_name == "plain"  # no @problemName: the file's stem
    np.testing.assert_array_equal(result.x[0], [[1, 3], [2, 4]])
    np.testing.assert_array_equal(result.x[1], [[5, 6]])


def test_read_ts_missing_values_are_interpolated_along_time(tmp_path):
    text = (
        "@problemName Gaps\n@missing true\n@dimensions 2\n@classLabel true x y\n@data\n"
        "?,2,?,4,?:1,NaN,nan,4,?:x\n"
        "1,2:3,?:y\n"
    )
    result = data.read_ts(write(tmp_path, "gaps.ts", text))
    assert result.filled == 3 + 3 + 1
    # Leading and trailing gaps take the nearest value; inner ones lie on the line between their neighbours.
    np.testing.assert_array_equal(result.x[0], [[2, 1], [2, 2], [3, 3], [4, 4], [4, 4]])
    np.testing.assert_array_equal(result.x[1], [[1, 3], [2, 3]])


def test_read_ts_interpolation_per_dimension(tmp_path):
    text = "@dimensions 2\n@classLabel true x\n@data\n1,?,?,7:10,?,30,?:x\n"
    result = data.read_ts(write(tmp_path, "g.ts", text))
    np.testing.assert_array_equal(result.x[0], [[1, 10], [3, 20], [5, 30], [7, 30]])
    assert result.filled == 4


def test_read_ts_missing_error_names_file_line_dimension_and_value(tmp_path):
    path = write(tmp_path, "gaps.ts", "@classLabel true x\n@data\n1,2,3:x\n4,?,6:x\n")
    refuses(
        lambda: data.read_ts(path, missing="error"),
        r"gaps\.ts: line 4, dimension 1, value 2 is missing",
        "missing='error'",
    )
    with pytest.raises(ValueError, match="missing: got 'drop', expected one of 'interpolate', 'error'"):
        data.read_ts(path, missing="drop")


def test_read_ts_all_missing_dimension(tmp_path):
    path = write(tmp_path, "nan.ts", "@dimensions 2\n@classLabel true x\n@data\n1,2:3,4:x\n1,2:?,?:x\n")
    refuses(lambda: data.read_ts(path), r"nan\.ts: line 5, dimension 2 has no value \(all 2 missing\)")


HEAD = "@problemName P\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("@timeStamps true\n" + HEAD + "(0,1),(1,2):a\n", r"line 1 is @timeStamps true: .*not supported"),
        ("@targetLabel true\n@data\n1,2:0.5\n", r"line 1 is @targetLabel true: regression files are not supported"),
        (
            "@dimensions 2\n" + HEAD + "1,2:3,4:a\n1,2:b\n",
            r"line 6 has 1 dimension\(s\), expected 2 \(@dimensions on "
            r"line 1\)",
        ),
        (HEAD + "1,2:3,4:a\n1,2:b\n", r"line 5 has 1 dimension\(s\), expected 2 \(like line 4\)"),
        (
            "@univariate true\n" + HEAD + "1,2:a\n1,2:3,4:b\n",
            r"line 6 has 2 dimension\(s\), expected 1 \(@univariate "
            r"true on line 1\)",
        ),
        (HEAD + "1,2:a\n1,2:c\n", r"line 5 has class label 'c', expected one of @classLabel on line 2: a b"),
        (HEAD + "1,2:a\n1,2\n", r"line 5 has no ':' before a class label"),
        (HEAD + "1,x,3:a\n", r"line 4, dimension 1, value 2 is 'x', expected a finite number"),
        (HEAD + "1,2,:a\n", r"line 4, dimension 1, value 3 is '', expected a finite number"),
        (HEAD + "1,inf:a\n", r"line 4, dimension 1, value 2 is 'inf', expected a finite number"),
        (HEAD + "1,2:a\n:b\n", r"line 5: dimension 1 is an empty series"),
        ("@dimensions 2\n" + HEAD + "1,2: :a\n", r"line 5: dimension 2 is an empty series"),
        ("@dimensions 2\n" + HEAD + "1,2:3:a\n", r"line 5 has dimensions of lengths \[2, 1\], expected one length"),
        (
            "@equalLength true\n@seriesLength 3\n" + HEAD + "1,2,3:a\n1,2:b\n",
            r"line 7 has a series of length 2, expected 3 \(@seriesLength on line 2\)",
        ),
        (
            "@equalLength true\n" + HEAD + "1,2,3:a\n1,2:b\n",
            r"line 6 has a series of length 2, expected 3 \(like line 5",
        ),
        ("@problemName P\n@classLabel true a\n1,2:a\n", r"line 3 is '1,2:a' before @data, expected a header line"),
        ("@problemName P\n@classLabel true a\n", r"no @data line \(read to line 3\)"),
        ("@problemName P\n@classLabel true a\n@data\n\n# nothing\n", r"no series after @data on line 3"),
        ("@problemName P\n@classLabels true a\n@data\n1:a\n", r"line 2 has header '@classLabels', expected one of"),
        ("@classLabel true\n@data\n1:a\n", r"line 1 is @classLabel true without labels"),
        ("@classLabel true a a\n@data\n1:a\n", r"line 1 lists class label 'a' twice"),
        ("@univariate yes\n" + HEAD + "1:a\n", r"line 1 is @univariate 'yes', expected true or false"),
        ("@dimensions two\n" + HEAD + "1:a\n", r"line 1 is @dimensions 'two', expected a positive integer"),
        ("@data\n1,2\n@data\n", r"line 3, dimension 1, value 1 is '@data'"),
        ("@missing true\n@missing true\n@data\n1\n", r"line 2 repeats @missing of line 1"),
    ],
)
def test_read_ts_refuses_naming_file_and_line(tmp_path, text, pattern):
    path = write(tmp_path, "bad.ts", text)
    refuses(lambda: data.read_ts(path), r"bad\.ts: " + pattern)


def test_read_ts_empty_and_missing_file(tmp_path):
    refuses(lambda: data.read_ts(write(tmp_path, "empty.ts", "\n")), r"empty\.ts: the file is empty")
    with pytest.raises(FileNotFoundError):
        data.read_ts(tmp_path / "absent.ts")


# The counts of shared/data/README.md: (series length, classes, train, test).
UEA = {
    "GunPoint": (150, 2, 50, 150),
    "ArrowHead": (251, 3, 36, 175),
    "ItalyPowerDemand": (24, 2, 67, 1029),
    "OSULeaf": (427, 6, 200, 242),
}


@pytest.mark.parametrize("problem", sorted(UEA))
def test_shared_uea_files(shared_data, problem):
    length, n_classes, n_train, n_test = UEA[problem]
    for split, count in (("TRAIN", n_train), ("TEST", n_test)):
        path = shared_data / "uea" / f"{problem}_{split}.ts"
        result = data.read_ts(path)
        assert len(result) == count and len(result.y) == count
        assert result.problem_name == problem and result.dimensions == 1 and result.filled == 0
        assert len(result.classes) == n_classes and set(result.y) == set(result.classes)
        assert set(result.lengths.tolist()) == {length}
        # The first series, parsed here from the raw text, is what the reader returns.
        lines = path.read_text(encoding="utf-8").splitlines()
        first = lines[next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1]
        values, label = first.rsplit(":", 1)
        np.testing.assert_array_equal(result.x[0][:, 0], [float(v) for v in values.split(",")])
        assert result.y[0] == label.strip()


# ----- .npz -------------------------------------------------------------------------------------------------
def savez(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_read_npz_3d_with_lengths_and_string_labels(tmp_path):
    x = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3) / 8
    path = savez(tmp_path, x=x, lengths=np.array([2, 4]), y=np.array(["dog", "cat"]), extra=np.zeros(1))
    result = data.read_npz(path)
    assert len(result) == 2 and result.dimensions == 3 and result.problem_name == "d"
    assert result.y == ["dog", "cat"] and result.classes == ["cat", "dog"]
    assert [s.shape for s in result.x] == [(2, 3), (4, 3)] and all(s.dtype == np.float64 for s in result.x)
    np.testing.assert_array_equal(result.x[0], x[0, :2])
    np.testing.assert_array_equal(result.x[1], x[1])
    assert result.files == [str(path)] and result.filled == 0


def test_read_npz_2d_and_integer_labels(tmp_path):
    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.int16)
    result = data.read_npz(savez(tmp_path, x=x, y=np.array([10, 2, 10])))
    assert result.dimensions == 1 and result.y == ["10", "2", "10"]
    assert result.classes == ["2", "10"]  # integer labels sorted as numbers
    np.testing.assert_array_equal(result.x[2], [[7], [8], [9]])
    unlabelled = data.read_npz(savez(tmp_path, "u.npz", x=x))
    assert unlabelled.y is None and unlabelled.classes is None and len(unlabelled) == 3


def test_read_npz_per_step_tags_cut_to_lengths(tmp_path):
    tags = np.array([[1, 2, -100, -100], [0, 1, 2, 3]])
    result = data.read_npz(savez(tmp_path, x=np.ones((2, 4, 1)), lengths=np.array([2, 4]), y=tags))
    assert result.classes is None
    assert [t.dtype for t in result.y] == [np.int64, np.int64]
    np.testing.assert_array_equal(result.y[0], [1, 2])
    np.testing.assert_array_equal(result.y[1], [0, 1, 2, 3])


def test_read_npz_nan_is_missing(tmp_path):
    x = np.array(
        [
            [[np.nan, 1.0], [2.0, np.nan], [np.nan, 5.0], [np.nan, np.nan]],
            [[1.0, 1.0], [np.nan, 2.0], [3.0, 3.0], [np.nan, np.nan]],
        ]
    )
    path = savez(tmp_path, x=x, lengths=np.array([3, 3]))  # the NaNs after each length are padding, not read
    result = data.read_npz(path)
    assert result.filled == 4
    np.testing.assert_array_equal(result.x[0], [[2, 1], [2, 3], [2, 5]])
    np.testing.assert_array_equal(result.x[1], [[1, 1], [2, 2], [3, 3]])
    refuses(lambda: data.read_npz(path, missing="error"), r"d\.npz: key 'x', x\[0, 0, 0\] is missing")
    flat = savez(tmp_path, "flat.npz", x=np.array([[1.0, np.nan]]))
    refuses(lambda: data.read_npz(flat, missing="error"), r"flat\.npz: key 'x', x\[0, 1\] is missing")
    empty = savez(tmp_path, "allnan.npz", x=np.array([[[1.0, np.nan], [2.0, np.nan]]]))
    refuses(lambda: data.read_npz(empty), r"allnan\.npz: key 'x', x\[0, :, 1\] has no value")


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        ({"y": np.array([0, 1])}, r"no key 'x', expected 'x' .*the archive has \['y'\]"),
        ({"x": np.ones((2, 3)), "y": np.array(["a", None], dtype=object)}, r"key 'y' holds an object array"),
        ({"x": np.array([np.ones(2), np.ones(3)], dtype=object)}, r"key 'x' holds an object array"),
        ({"x": np.ones(3)}, r"key 'x' has shape \(3,\), expected \(N, T, F\) or \(N, T\)"),
        ({"x": np.ones((1, 2, 3, 4))}, r"key 'x' has shape \(1, 2, 3, 4\)"),
        ({"x": np.ones((0, 3))}, r"key 'x' has shape \(0, 3\)"),
        ({"x": np.array([["a", "b"]])}, r"key 'x' has dtype <U1, expected real numbers"),
        ({"x": np.ones((2, 3)), "lengths": np.array([3, 0])}, r"key 'lengths' has lengths\[1\] = 0, expected 1\.\.3"),
        ({"x": np.ones((2, 3)), "lengths": np.array([4, 1])}, r"key 'lengths' has lengths\[0\] = 4, expected 1\.\.3"),
        ({"x": np.ones((2, 3)), "lengths": np.array([3])}, r"key 'lengths' has shape \(1,\).*expected \(2,\) integers"),
        ({"x": np.ones((2, 3)), "lengths": np.array([3.0, 1.0])}, r"key 'lengths' .*dtype float64, expected \(2,\)"),
        (
            {"x": np.ones((2, 3)), "y": np.array([0, 1, 1])},
            r"key 'y' has shape \(3,\), expected \(2,\) class labels or "
            r"\(2, 3\) per-step tags",
        ),
        ({"x": np.ones((2, 3)), "y": np.array([0.5, 1.5])}, r"key 'y' has dtype float64, expected integer or string"),
        ({"x": np.ones((2, 3)), "y": np.array([True, False])}, r"key 'y' has dtype bool"),
        (
            {"x": np.ones((2, 3)), "y": np.ones((2, 3))},
            r"key 'y' has per-step tags of dtype float64, expected integers",
        ),
        ({"x": np.array([[1.0, np.inf]])}, r"key 'x' has x\[0, 1\] = inf, expected finite numbers"),
        ({"x": np.array([[[1.0], [-np.inf]]])}, r"key 'x' has x\[0, 1, 0\] = -inf"),
    ],
)
def test_read_npz_refuses_naming_file_and_key(tmp_path, arrays, pattern):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    refuses(lambda: data.read_npz(path), r"bad\.npz: " + pattern)


def test_read_npz_refuses_other_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive at all")
    refuses(lambda: data.read_npz(garbage), r"garbage\.npz: cannot be read as a NumPy \.npz archive")
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.ones(3))
    refuses(lambda: data.read_npz(single), r"single\.npz: holds a single array \(\.npy\)")
    with pytest.raises(FileNotFoundError):
        data.read_npz(tmp_path / "absent.npz")


# ----- .wav -------------------------------------------------------------------------------------------------
def write_wave(path, frames: np.ndarray, width: int, rate: int = 8000):
    """Integer PCM with the standard library (frames: (T, channels) integers of the file's width)."""
    frames = np.asarray(frames)
    channels = frames.shape[1]
    if width == 1:
        raw = frames.astype(np.uint8).tobytes()
    elif width == 3:
        value = frames.astype(np.int64).ravel() & 0xFFFFFF
        raw = np.stack([value & 0xFF, (value >> 8) & 0xFF, value >> 16], axis=1).astype(np.uint8).tobytes()
    else:
        raw = frames.astype(f"<i{width}").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


def riff(
    path,
    tag: int,
    channels: int,
    rate: int,
    bits: int,
    payload: bytes,
    subformat: int | None = None,
    declared: int | None = None,
):
    """A WAVE file written by hand: format ``tag`` (WAVE_FORMAT_EXTENSIBLE with ``subformat``), a 'LIST' chunk
    before the data, and a data chunk declaring ``declared`` bytes (default: the payload's length)."""
    block = channels * bits // 8
    if subformat is None:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    else:
        guid = struct.pack("<H", subformat) + bytes.fromhex("000000001000800000aa00389b71")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0) + guid
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"  # an odd-sized chunk and its pad byte
    chunks += b"data" + struct.pack("<I", len(payload) if declared is None else declared) + payload
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def test_read_wav_folder_integer_pcm_widths(tmp_path):
    root = tmp_path / "clips"
    u8 = np.array([[0], [128], [255], [64]])
    i16 = np.array([[-32768], [0], [32767], [-1], [12345]])
    i24 = np.array([[-(1 << 23)], [(1 << 23) - 1], [-1], [654321]])
    i32 = np.array([[-(1 << 31)], [(1 << 31) - 1], [7], [-123456789]])
    write_wave(root / "yes" / "b.wav", i16, 2)
    write_wave(root / "yes" / "a.wav", u8, 1)
    write_wave(root / "no" / "c.wav", i24, 3)
    write_wave(root / "no" / "d.wav", i32, 4)
    (root / "no" / "notes.txt").write_text("not audio")
    result = data.read_wav_folder(root)
    assert result.classes == ["no", "yes"] and result.y == ["no", "no", "yes", "yes"]
    assert result.files == [
        str(root / "no" / "c.wav"),
        str(root / "no" / "d.wav"),
        str(root / "yes" / "a.wav"),
        str(root / "yes" / "b.wav"),
    ]
    assert result.sample_rate == 8000 and result.dimensions == 1 and result.problem_name == "clips"
    assert all(s.dtype == np.float64 and s.ndim == 2 and s.shape[1] == 1 for s in result.x)
    np.testing.assert_array_equal(result.x[0][:, 0], i24[:, 0] / 2**23)
    np.testing.assert_array_equal(result.x[1][:, 0], i32[:, 0] / 2**31)
    np.testing.assert_array_equal(result.x[2][:, 0], (u8[:, 0] - 128) / 128)
    np.testing.assert_array_equal(result.x[3][:, 0], i16[:, 0] / 2**15)
    assert min(s.min() for s in result.x) == -1 and max(s.max() for s in result.x) < 1


def test_read_wav_folder_float_and_extensible(tmp_path):
    root = tmp_path / "f"
    f32 = np.array([0.5, -0.25, 1e-3, -1.0], dtype=np.float32)
    f64 = np.array([0.1, -0.7, 0.3], dtype=np.float64)
    riff(root / "a" / "f32.wav", 3, 1, 16000, 32, f32.astype("<f4").tobytes())
    riff(root / "a" / "f64.wav", 3, 1, 16000, 64, f64.astype("<f8").tobytes())
    riff(root / "b" / "x_float.wav", 0, 1, 16000, 32, f32.astype("<f4").tobytes(), subformat=3)
    pcm = np.array([100, -200, 300], dtype="<i2")
    riff(root / "b" / "y_pcm.wav", 0, 1, 16000, 16, pcm.tobytes(), subformat=1)
    result = data.read_wav_folder(root)
    assert result.y == ["a", "a", "b", "b"] and result.sample_rate == 16000
    np.testing.assert_array_equal(result.x[0][:, 0], f32.astype(np.float64))
    np.testing.assert_array_equal(result.x[1][:, 0], f64)
    np.testing.assert_array_equal(result.x[2][:, 0], f32.astype(np.float64))
    np.testing.assert_array_equal(result.x[3][:, 0], pcm / 32768)


def test_read_wav_folder_mixes_channels_down_to_mono(tmp_path):
    root = tmp_path / "st"
    stereo = np.array([[1000, -3000], [32767, 32767], [-32768, 0]])
    write_wave(root / "a" / "s.wav", stereo, 2)
    three = np.array([[30, 60, 90], [-128, 0, 127]])
    write_wave(root / "b" / "t.wav", three + 128, 1)
    stereo_float = np.array([[0.5, 0.25], [-1.0, 1.0]], dtype="<f4")
    riff(root / "b" / "u.wav", 3, 2, 8000, 32, stereo_float.tobytes())
    result = data.read_wav_folder(root)
    np.testing.assert_array_equal(result.x[0][:, 0], (stereo[:, 0] / 32768 + stereo[:, 1] / 32768) / 2)
    np.testing.assert_allclose(result.x[1][:, 0], (three / 128).mean(axis=1), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(result.x[2][:, 0], [0.375, 0.0])


def sine_folder(tmp_path, rates_and_freqs, seconds=0.5):
    root = tmp_path / "tones"
    for k, (rate, freq) in enumerate(rates_and_freqs):
        t = np.arange(int(rate * seconds)) / rate
        samples = np.round(0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int64)
        write_wave(root / f"class{k % 2}" / f"tone{k}.wav", samples[:, None], 2, rate)
    return root


def test_read_wav_folder_refuses_mixed_rates_without_sample_rate(tmp_path):
    root = sine_folder(tmp_path, [(8000, 440), (16000, 440)])
    refuses(
        lambda: data.read_wav_folder(root),
        r"tone1\.wav: sample rate 16000 Hz, but .*tone0\.wav has 8000 Hz",
        "sample_rate=",
    )


def test_read_wav_folder_resamples_keeping_the_frequency(tmp_path):
    root = sine_folder(tmp_path, [(44100, 1000), (16000, 1000), (8000, 1000), (22050, 3000)])
    result = data.read_wav_folder(root, sample_rate=16000)
    assert result.sample_rate == 16000
    assert result.lengths.tolist() == [8000, 8000, 8000, 8000]
    by_name = {name.rsplit("/", 1)[-1]: clip[:, 0] for name, clip in zip(result.files, result.x)}
    t = np.arange(8000) / 16000
    inner = slice(300, -300)  # the ends see the zeros beyond the clip
    for name, freq in [("tone0.wav", 1000), ("tone1.wav", 1000), ("tone2.wav", 1000), ("tone3.wav", 3000)]:
        expected = 0.5 * np.sin(2 * np.pi * freq * t)
        np.testing.assert_allclose(by_name[name][inner], expected[inner], rtol=0, atol=2e-4)
        spectrum = np.abs(np.fft.rfft(by_name[name]))
        assert np.fft.rfftfreq(8000, 1 / 16000)[spectrum.argmax()] == freq
    # The file already at 16 kHz is read unchanged.
    samples = np.round(0.5 * np.sin(2 * np.pi * 1000 * t) * 32767) / 32768
    np.testing.assert_array_equal(by_name["tone1.wav"], samples)


def test_resampling_attenuates_a_tone_above_the_new_nyquist(tmp_path):
    root = sine_folder(tmp_path, [(44100, 11000), (44100, 500)])
    result = data.read_wav_folder(root, sample_rate=16000)
    high, low = (np.sqrt(np.mean(s[300:-300, 0] ** 2)) for s in result.x)
    source_rms = 0.5 / np.sqrt(2)
    assert high < 1e-3 * source_rms  # 11 kHz would alias to 5 kHz without the low-pass
    assert abs(low / source_rms - 1) < 1e-3


def test_read_wav_folder_refuses_bad_files(tmp_path):
    def one(name, make):
        root = tmp_path / name
        write_wave(root / "ok" / "fine.wav", np.array([[1], [2]]), 2)
        make(root / "bad" / "clip.wav")
        return lambda: data.read_wav_folder(root)

    payload = np.arange(10, dtype="<i2").tobytes()
    truncated = one("trunc", lambda p: riff(p, 1, 1, 8000, 16, payload, declared=len(payload) + 6))
    refuses(truncated, r"clip\.wav: truncated: chunk 'data' at byte \d+ declares 26 bytes, only 20 remain")
    partial = one("partial", lambda p: riff(p, 1, 2, 8000, 16, payload[:18]))
    refuses(partial, r"clip\.wav: truncated: the 'data' chunk has 18 bytes, not a whole number of 4-byte frames")
    refuses(
        one("adpcm", lambda p: riff(p, 2, 1, 8000, 4, b"\x00" * 16)),
        r"clip\.wav: format tag 2 \(Microsoft ADPCM\) is compressed or not supported",
    )
    refuses(one("ima", lambda p: riff(p, 17, 1, 8000, 4, b"\x00" * 16)), r"clip\.wav: format tag 17 \(IMA ADPCM\)")
    refuses(
        one("mulaw_ext", lambda p: riff(p, 0, 1, 8000, 8, b"\x00" * 16, subformat=7)),
        r"clip\.wav: format tag 7 \(mu-law\)",
    )
    refuses(
        one("bits", lambda p: riff(p, 3, 1, 8000, 16, b"\x00" * 16)),
        r"clip\.wav: 16 bits per sample, "
        r"expected 32 or 64 for IEEE float",
    )
    refuses(
        one("nan", lambda p: riff(p, 3, 1, 8000, 32, np.array([0, np.nan], "<f4").tobytes())),
        r"clip\.wav: has NaN or infinite samples",
    )
    refuses(one("empty", lambda p: riff(p, 1, 1, 8000, 16, b"")), r"clip\.wav: the 'data' chunk is empty")

    def not_riff(p):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"ID3\x03 this is an mp3")

    refuses(one("mp3", not_riff), r"clip\.wav: not a RIFF/WAVE file")

    def cut(p):
        write_wave(p, np.arange(100)[:, None], 2)
        p.write_bytes(p.read_bytes()[:-30])  # as a copy interrupted part way leaves it

    refuses(one("cut", cut), r"clip\.wav: truncated: chunk 'data'")


def test_read_wav_folder_refuses_bad_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    refuses(lambda: data.read_wav_folder(empty), r"empty: no class subfolders")
    single = tmp_path / "single"
    write_wave(single / "only" / "a.wav", np.array([[1]]), 2)
    refuses(lambda: data.read_wav_folder(single), r"single: only one class subfolder \('only'\), expected at least two")
    hollow = tmp_path / "hollow"
    write_wave(hollow / "a" / "a.wav", np.array([[1]]), 2)
    (hollow / "b").mkdir()
    refuses(lambda: data.read_wav_folder(hollow), r"hollow/b: no \.wav files, expected at least one clip for class 'b'")
    stray = tmp_path / "stray"
    write_wave(stray / "a" / "a.wav", np.array([[1]]), 2)
    write_wave(stray / "b" / "b.wav", np.array([[1]]), 2)
    write_wave(stray / "loose.wav", np.array([[1]]), 2)
    refuses(lambda: data.read_wav_folder(stray), r"loose\.wav: a \.wav file outside a class subfolder")
    refuses(lambda: data.read_wav_folder(stray / "a" / "a.wav"), r"a\.wav: is a file, expected a folder")
    with pytest.raises(FileNotFoundError):
        data.read_wav_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="sample_rate: got 0"):
        data.read_wav_folder(empty, sample_rate=0)
    with pytest.raises(TypeError, match="sample_rate: got 16000.0"):
        data.read_wav_folder(empty, sample_rate=16000.0)


def test_new_names_are_exported():
    for name in ("SequenceSet", "read_ts", "read_npz", "read_wav_folder"):
        assert name in data.__all__
