"""Checkpoints: round trips, the safetensors layout read by an independent parser, atomic writes, and every kind
of damaged or foreign file raising CheckpointError."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnfast as rf
from rnnfast.io import CheckpointError, load, save
from rnnfast.text import CharTokenizer, WordTokenizer


def _optimizer_state():
    return {
        "step": 7,
        "lr": 0.001,
        "betas": [0.9, 0.999],
        "name": "adam",
        "nested": {"a": [1, 2], "b": None},
        "m": np.arange(6, dtype=np.float32).reshape(2, 3),
        "v": np.full(5, 0.25),
        "t": np.array(3, np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 4), np.float32),
    }


def _assert_optimizer_state_equal(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert isinstance(got[key], np.ndarray) and got[key].dtype == value.dtype, key
            assert got[key].shape == value.shape and np.array_equal(got[key], value), key
        else:
            assert got[key] == value, key


# ----- an independent reader/writer of the documented layout ------------------------------------------------
def _split(path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict, data: bytes) -> bytes:
    header_bytes = json.dumps(header).encode()
    return struct.pack("<Q", len(header_bytes)) + header_bytes + data


def _sealed(header: dict, data: bytes) -> bytes:
    """A file with a valid checksum per io.py's documented scheme, so that later checks are what fails."""
    metadata = {k: v for k, v in header["__metadata__"].items() if k != "checksum"}
    header = {k: v for k, v in header.items() if k != "__metadata__"}
    header["__metadata__"] = metadata
    core = json.dumps(header, separators=(",", ":")).encode()
    digest = hashlib.sha256(core + data).hexdigest()
    header_bytes = core[:-2] + f',"checksum":"sha256:{digest}"}}}}'.encode()
    return struct.pack("<Q", len(header_bytes)) + header_bytes + data


@pytest.fixture()
def checkpoint(tmp_path):
    """A small saved LSTM with a tokenizer, optimizer state and extra."""
    path = tmp_path / "small.rnnf"
    model = rf.LSTM(2, 3, seed=1)
    save(path, model, tokenizer=CharTokenizer.fit("ab\n"), optimizer={"lr": 0.5, "m": np.ones(3)}, extra={"step": 4})
    return path


# ----- round trips ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: rf.LSTM(3, 5, num_layers=2, bidirectional=True, seed=0),
        lambda: rf.GRU(4, 3, num_layers=2, batch_first=True, dtype="float64", seed=1),
        lambda: rf.RNN(3, 4, nonlinearity="relu", bias=False, seed=2),
    ],
    ids=["lstm", "gru64", "rnn_relu"],
)
def test_round_trip_restores_model_tokenizer_optimizer_and_extra(tmp_path, make):
    model = make()
    tokenizer = WordTokenizer.fit("the cat sat\non the mat\n")
    optimizer = _optimizer_state()
    extra = {"step": 1234, "loss": 1.25, "history": [3.0, 2.5], "name": "run ☃"}
    path = tmp_path / "model.rnnf"
    save(path, model, tokenizer=tokenizer, optimizer=optimizer, extra=extra)

    ckpt = load(path)
    assert type(ckpt.model) is type(model)
    assert ckpt.config == model.config() == ckpt.model.config()
    saved, loaded = model.state_dict(), ckpt.model.state_dict()
    assert list(loaded) == list(saved)
    for name in saved:
        assert loaded[name].dtype == saved[name].dtype
        np.testing.assert_array_equal(loaded[name], saved[name])
    x = np.random.default_rng(0).standard_normal((4, 2, model.input_size))
    y_saved, h_saved = model.eval()(x)
    y_loaded, h_loaded = ckpt.model.eval()(x)
    np.testing.assert_array_equal(y_loaded, y_saved)
    np.testing.assert_array_equal(np.asarray(h_loaded), np.asarray(h_saved))
    assert ckpt.tokenizer == tokenizer
    _assert_optimizer_state_equal(ckpt.optimizer_state, optimizer)
    assert ckpt.extra == extra
    assert ckpt.step == 1234
    assert ckpt.version == 1


def test_optional_parts_are_absent_by_default(tmp_path):
    path = tmp_path / "bare.rnnf"
    save(str(path), rf.GRU(2, 2, seed=0))
    ckpt = load(str(path))
    assert ckpt.tokenizer is None and ckpt.optimizer_state is None
    assert ckpt.step == 0 and ckpt.extra == {}


def test_optimizer_object_and_numpy_scalars(tmp_path):
    class Optimizer:
        def state_dict(self):
            return {"lr": np.float64(0.25), "t": np.int64(9), "m": np.ones((2, 2), np.float32)}

    path = tmp_path / "opt.rnnf"
    save(path, rf.RNN(2, 2, seed=0), optimizer=Optimizer(), extra={"step": np.int64(5), "flag": np.bool_(True)})
    ckpt = load(path)
    assert ckpt.optimizer_state["lr"] == 0.25 and ckpt.optimizer_state["t"] == 9
    np.testing.assert_array_equal(ckpt.optimizer_state["m"], np.ones((2, 2), np.float32))
    assert ckpt.step == 5 and ckpt.extra["flag"] is True


def test_big_endian_arrays_are_stored_little_endian(tmp_path):
    path = tmp_path / "be.rnnf"
    values = np.arange(4, dtype=">f8")
    save(path, rf.RNN(2, 2, seed=0), optimizer={"m": values})
    header, data = _split(path)
    begin, end = header["optimizer.m"]["data_offsets"]
    assert data[begin:end] == np.arange(4, dtype="<f8").tobytes()
    np.testing.assert_array_equal(load(path).optimizer_state["m"], values)


def test_save_overwrites_an_existing_checkpoint(tmp_path):
    path = tmp_path / "model.rnnf"
    save(path, rf.LSTM(2, 2, seed=0))
    save(path, rf.GRU(3, 4, seed=0), extra={"step": 2})
    ckpt = load(path)
    assert isinstance(ckpt.model, rf.GRU) and ckpt.model.hidden_size == 4 and ckpt.step == 2
    assert os.listdir(tmp_path) == ["model.rnnf"]


def test_file_permissions_follow_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        save(tmp_path / "m.rnnf", rf.RNN(2, 2, seed=0))
    finally:
        os.umask(umask)
    if os.name == "posix":
        assert os.stat(tmp_path / "m.rnnf").st_mode & 0o777 == 0o644


# ----- layout -----------------------------------------------------------------------------------------------
def test_layout_is_safetensors_with_rnnfast_metadata(tmp_path):
    model = rf.LSTM(3, 2, num_layers=2, seed=3)
    tokenizer = CharTokenizer.fit("hi")
    path = tmp_path / "layout.rnnf"
    save(path, model, tokenizer=tokenizer, optimizer={"lr": 0.1, "m": np.ones(2, np.float64)}, extra={"step": 9})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0
    header, data = _split(path)
    meta = header["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["format"] == "rnnfast" and meta["format_version"] == "1"
    assert meta["model_class"] == "LSTM"
    assert json.loads(meta["model_config"]) == model.config()
    assert json.loads(meta["tokenizer"]) == tokenizer.to_dict()
    assert json.loads(meta["extra"]) == {"step": 9}
    assert meta["checksum"].startswith("sha256:")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    expected = {f"model.{k}": v for k, v in model.state_dict().items()}
    expected["optimizer.m"] = np.ones(2, np.float64)
    assert set(tensors) == set(expected)
    spans = sorted(entry["data_offsets"] for entry in tensors.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    for name, arr in expected.items():
        entry = tensors[name]
        assert entry["dtype"] == {"float32": "F32", "float64": "F64"}[arr.dtype.name]
        assert entry["shape"] == list(arr.shape)
        begin, end = entry["data_offsets"]
        assert data[begin:end] == arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        assert begin % arr.dtype.itemsize == 0


def test_the_safetensors_package_reads_it(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors = pytest.importorskip("safetensors")
    model = rf.GRU(3, 2, seed=0)
    path = tmp_path / "st.rnnf"
    save(path, model, optimizer={"m": np.arange(3.0)})
    arrays = safetensors_numpy.load_file(str(path))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(arrays[f"model.{name}"], value)
    np.testing.assert_array_equal(arrays["optimizer.m"], np.arange(3.0))
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata()["model_class"] == "GRU"


def test_sealing_helper_matches_the_format(checkpoint):
    """The corruption tests below re-seal edited headers; an unedited re-sealed file must load."""
    header, data = _split(checkpoint)
    checkpoint.write_bytes(_sealed(header, data))
    assert load(checkpoint).step == 4


# ----- atomic writes ----------------------------------------------------------------------------------------
def _fail_with(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    "function, exc",
    [
        ("fsync", OSError(28, "No space left on device")),
        ("replace", OSError(13, "Permission denied")),
        ("replace", KeyboardInterrupt()),
    ],
)
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, function, exc):
    path = tmp_path / "model.rnnf"
    save(path, rf.LSTM(2, 2, seed=0), extra={"step": 1})
    before = path.read_bytes()
    monkeypatch.setattr(os, function, _fail_with(exc))
    with pytest.raises(type(exc)):
        save(path, rf.LSTM(2, 2, seed=5), extra={"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.rnnf"]
    assert load(path).step == 1


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", _fail_with(OSError(5, "Input/output error")))
    with pytest.raises(OSError):
        save(tmp_path / "new.rnnf", rf.RNN(2, 2, seed=0))
    assert os.listdir(tmp_path) == []


class _BadTokenizer:
    def to_dict(self):
        return {"type": "bpe", "tokens": ["a"]}


class _Unregistered(rf.GRU):
    """A Module subclass whose name starts with an underscore is not in MODULE_TYPES."""


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"model": object()}, TypeError, "model: got object"),
        ({"model": _Unregistered(2, 2)}, TypeError, "model: got _Unregistered"),
        ({"extra": [1]}, TypeError, "extra: got list"),
        ({"extra": {1: "x"}}, TypeError, "extra: got key 1"),
        ({"extra": {"loss": float("nan")}}, ValueError, r"extra\['loss'\]"),
        ({"extra": {"state": [[0.5, 1.0], [2.0, float("inf")]]}}, ValueError, r"extra\['state'\]\[1\]\[1\]: got inf"),
        ({"extra": {"state": [0.5, "x", float("nan")]}}, ValueError, r"extra\['state'\]\[2\]: got nan"),
        ({"extra": {"step": -1}}, ValueError, r"extra\['step'\]"),
        ({"extra": {"step": 1.5}}, TypeError, r"extra\['step'\]"),
        ({"extra": {"arr": np.ones(2)}}, TypeError, r"extra\['arr'\]: got ndarray"),
        ({"optimizer": {"m": {"w": np.ones(2)}}}, TypeError, r"optimizer state\['m'\]\['w'\]"),
        ({"optimizer": {"m": np.array(["a"])}}, TypeError, r"optimizer state\['m'\]: got dtype <U1"),
        ({"optimizer": 3}, TypeError, "optimizer: got int"),
        ({"tokenizer": "abc"}, TypeError, "tokenizer: got str"),
        ({"tokenizer": _BadTokenizer()}, ValueError, "tokenizer: its to_dict"),
    ],
)
def test_save_rejects_bad_arguments_without_writing(tmp_path, kwargs, error, match):
    args = {"model": rf.RNN(2, 2, seed=0), **kwargs}
    with pytest.raises(error, match=match):
        save(tmp_path / "x.rnnf", **args)
    assert os.listdir(tmp_path) == []


def test_save_refuses_weights_that_could_not_be_loaded(tmp_path):
    model = rf.RNN(2, 2, seed=0)
    model.named_parameters()["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match="model: parameter 'weight_hh_l0' contains NaN"):
        save(tmp_path / "x.rnnf", model)
    assert os.listdir(tmp_path) == []


def test_save_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        save(tmp_path / "no" / "such" / "x.rnnf", rf.RNN(2, 2, seed=0))
    with pytest.raises(IsADirectoryError, match="path"):
        save(tmp_path, rf.RNN(2, 2, seed=0))
    with pytest.raises(TypeError, match="path"):
        save(3, rf.RNN(2, 2, seed=0))


# ----- damaged and foreign files ----------------------------------------------------------------------------
def _load_fails(path, match=None) -> str:
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message
    if match is not None:
        assert match in message, message
    return message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.rnnf")


def test_every_truncation_point_class(checkpoint):
    raw = checkpoint.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    cuts = {
        0: None,
        5: "too short",
        8: None,
        9: "truncated",
        8 + n // 2: "truncated",
        8 + n - 1: "truncated",
        8 + n: "truncated",
        8 + n + 5: "truncated",
        len(raw) - 1: "truncated",
    }
    for cut, match in cuts.items():
        checkpoint.write_bytes(raw[:cut])
        _load_fails(checkpoint, match)


def test_a_single_flipped_bit_anywhere_is_detected(checkpoint):
    raw = checkpoint.read_bytes()
    for offset in range(len(raw)):
        damaged = bytearray(raw)
        damaged[offset] ^= 1 << (offset % 8)
        checkpoint.write_bytes(bytes(damaged))
        _load_fails(checkpoint)


def test_all_bits_of_the_header_length_and_data_edges(checkpoint):
    raw = checkpoint.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    for offset in [0, 1, 7, 8, 8 + n - 1, 8 + n, len(raw) - 1]:
        for bit in range(8):
            damaged = bytearray(raw)
            damaged[offset] ^= 1 << bit
            checkpoint.write_bytes(bytes(damaged))
            _load_fails(checkpoint)


def test_data_corruption_reports_a_checksum_mismatch(checkpoint):
    raw = bytearray(checkpoint.read_bytes())
    raw[-3] ^= 0x10
    checkpoint.write_bytes(bytes(raw))
    _load_fails(checkpoint, "checksum mismatch")


@pytest.mark.parametrize(
    "version, match",
    [
        ("2", "newer rnnfast"),
        ("10", "upgrade"),
        ("0", "format_version"),
        ("one", "format_version"),
        ("", "format_version"),
        ("²", "format_version"),
        ("9" * 5000, "format_version"),
    ],
)
def test_format_versions_this_rnnfast_cannot_read(checkpoint, version, match):
    header, data = _split(checkpoint)
    header["__metadata__"]["format_version"] = version
    checkpoint.write_bytes(_sealed(header, data))
    _load_fails(checkpoint, match)


def _png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + b"\x00" * 4
        + struct.pack(">I", 0)
        + b"IEND\xaeB`\x82"
    )


def _foreign_safetensors(metadata) -> bytes:
    header = {"weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    return _join(header, np.ones(2, "<f4").tobytes())


@pytest.mark.parametrize(
    "content, match",
    [
        (_png(), "not an rnnfast checkpoint"),
        (b"The quick brown fox jumps over the lazy dog.\n" * 20, "not an rnnfast checkpoint"),
        (b"", "too short"),
        (b"{}", "too short"),
        (_foreign_safetensors({"format": "pt"}), "rnnfast metadata"),
        (_foreign_safetensors(None), "rnnfast metadata"),
        (_join({}, b""), "rnnfast metadata"),
        (_join([1, 2], b""), "expected an object"),
        (struct.pack("<Q", 8) + b"12345678", "expected an object"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid JSON"),
        (struct.pack("<Q", 100_000) + b"[" * 100_000, "not valid JSON"),
    ],
    ids=[
        "png",
        "text",
        "empty",
        "tiny",
        "safetensors-pt",
        "safetensors-bare",
        "empty-header",
        "list-header",
        "number-header",
        "not-utf8",
        "deeply-nested",
    ],
)
def test_foreign_files(tmp_path, content, match):
    path = tmp_path / "foreign.bin"
    path.write_bytes(content)
    _load_fails(path, match)


def test_zip_file(tmp_path):
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data.pkl", b"\x80\x04N.")
    _load_fails(path, "not an rnnfast checkpoint")


@pytest.mark.parametrize("length", [2**64 - 1, 2**40, 100_000_001])
def test_absurd_header_length_allocates_nothing(tmp_path, length):
    path = tmp_path / "absurd.rnnf"
    path.write_bytes(struct.pack("<Q", length) + b'{"__metadata__":{}}')
    tracemalloc.start()
    try:
        _load_fails(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def _set_tensor(name, **fields):
    def edit(header):
        header[name].update(fields)

    return edit


def _set_meta(key, value):
    def edit(header):
        if value is None:
            del header["__metadata__"][key]
        else:
            header["__metadata__"][key] = value

    return edit


def _rename_tensor(old, new):
    def edit(header):
        header[new] = header.pop(old)

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set_tensor("optimizer.m", shape=[4]), "need 32 bytes but data_offsets"),
        (_set_tensor("optimizer.m", dtype="F32"), "need 12 bytes"),
        (_set_tensor("optimizer.m", dtype="BF16"), "dtype 'BF16'"),
        (_set_tensor("optimizer.m", dtype=["F64"]), "dtype ['F64']"),
        (_set_tensor("optimizer.m", shape=[-3]), "shape"),
        (_set_tensor("optimizer.m", shape="3"), "shape"),
        (_set_tensor("optimizer.m", data_offsets=[8, 32]), "starts at byte"),
        (_set_tensor("optimizer.m", data_offsets=[24, 0]), "data_offsets"),
        (_set_tensor("optimizer.m", data_offsets=[0, 2**70]), "data_offsets"),
        (_set_tensor("optimizer.m", extra_field=1), "expected an entry"),
        (_rename_tensor("optimizer.m", "other.m"), "unexpected tensors"),
        (_rename_tensor("model.weight_hh_l0", "model.weight_xx"), "cannot rebuild LSTM"),
        (_set_meta("model_class", "NoSuchModel"), "unknown model class 'NoSuchModel'"),
        (_set_meta("model_class", None), "unknown model class None"),
        (_set_meta("model_config", "{not json"), "model_config"),
        (_set_meta("model_config", "[1]"), "model_config"),
        (_set_meta("model_config", None), "model_config"),
        (_set_meta("model_config", json.dumps({"input_size": 2, "hidden_size": 4})), "cannot rebuild LSTM"),
        (_set_meta("model_config", json.dumps({"input_size": 2, "hidden_size": 10**15})), "cannot rebuild LSTM"),
        (
            _set_meta("model_config", json.dumps({"input_size": 2, "hidden_size": 3, "colour": "red"})),
            "cannot rebuild LSTM",
        ),
        (_set_meta("tokenizer", json.dumps({"type": "char", "tokens": ["a", "a"]})), "tokenizer"),
        (_set_meta("optimizer", json.dumps({"keys": ["lr"], "values": {"lr": 0.5}})), "optimizer metadata keys"),
        (_set_meta("optimizer", None), "optimizer tensors"),
        (_set_meta("extra", json.dumps({"step": -2})), "extra['step']"),
        (_set_meta("extra", json.dumps({"step": True})), "extra['step']"),
        (_set_meta("extra", "[]"), "extra"),
        (_set_meta("format", "rnnfast2"), "rnnfast metadata"),
    ],
)
def test_inconsistent_headers_with_valid_checksums(checkpoint, edit, match):
    header, data = _split(checkpoint)
    edit(header)
    checkpoint.write_bytes(_sealed(header, data))
    message = _load_fails(checkpoint, match)
    assert "checksum" not in message


def test_non_string_metadata(checkpoint):
    header, data = _split(checkpoint)
    header["__metadata__"]["rnnfast_version"] = 1
    checkpoint.write_bytes(_sealed(header, data))
    _load_fails(checkpoint, "strings")


def test_checksum_entry_moved_or_removed(checkpoint):
    header, data = _split(checkpoint)
    checksum = header["__metadata__"].pop("checksum")
    checkpoint.write_bytes(_join(header, data))
    _load_fails(checkpoint, "checksum entry")
    header["__metadata__"] = {"checksum": checksum, **header["__metadata__"]}
    checkpoint.write_bytes(_join(header, data))
    _load_fails(checkpoint, "checksum entry")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["tokenizer", "optimizer", "extra", "optimizer.m", "model.bias_hh_l0"]),
    value=_json_values,
    as_json_text=st.booleans(),
)
def test_arbitrary_json_in_any_field_never_escapes_as_another_error(checkpoint, field, value, as_json_text):
    """Model configs are left out: a crafted config may legitimately ask for a model of any size."""
    header, data = _split(checkpoint)
    if field in header:
        header[field] = value
    else:
        header["__metadata__"][field] = json.dumps(value) if as_json_text else str(value)
    path = checkpoint.with_name("fuzzed.rnnf")
    path.write_bytes(_sealed(header, data))
    try:
        load(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)
