"""Checkpoints: a model, its tokenizer, optimizer state and training progress in one safetensors file.

Layout (readable by the ``safetensors`` package, written without it): an 8-byte little-endian header length N,
N bytes of JSON header, then the raw little-endian tensor data. The header maps each tensor name to
``{"dtype", "shape", "data_offsets"}`` (offsets into the data, tensors back to back) and holds
``"__metadata__"``, a string-to-string map, as its last entry:

- ``format`` ``"rnnfast"``, ``format_version`` ``"1"``, ``rnnfast_version``;
- ``model_class`` and ``model_config`` (JSON): the model is rebuilt as ``MODULE_TYPES[model_class](**config)``
  and its weights are the tensors ``model.<parameter name>``;
- ``weight_dtype`` ``"int8"``, only for a model from ``quantize("int8")``: its weight matrices are int8 tensors
  ``model.<name>`` with float32 tensors ``model.<name>.scale`` (one per row), and load quantizes the rebuilt
  model before reading them;
- ``tokenizer`` (JSON of ``to_dict()``), ``optimizer`` (JSON ``{"keys": [...], "values": {...}}``: the
  non-array entries of the optimizer's state dict; array entries are the tensors ``optimizer.<key>``) and
  ``extra`` (JSON), each only when given;
- the tensors ``state.<name>``: arrays saved beside the model (``save(arrays=...)``, e.g. the recurrent state a
  language model carries from one batch to the next), returned as ``Checkpoint.arrays``;
- ``checksum``, ``"sha256:<hex>"``, written last. It is the SHA-256 of the header as written without the
  checksum entry (compact JSON, i.e. the bytes up to ``,"checksum":...`` followed by ``}}``), then of the data.
  Any changed byte in the header or data is detected; trailing spaces pad the header to a multiple of 8 bytes.

Loading parses JSON only: nothing in a checkpoint is executed or unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _checks
from .module import MODULE_TYPES
from .text import tokenizer_from_dict

FORMAT = "rnnfast"
FORMAT_VERSION = 1
# The safetensors package refuses larger headers too; checking first means a corrupt length never allocates.
MAX_HEADER_BYTES = 100_000_000

_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
_DTYPE_NAMES = {np.dtype(code).newbyteorder("="): name for name, code in _DTYPES.items()}
_CHECKSUM_PREFIX = b',"checksum":"sha256:'
_CHECKSUM_TAIL_LEN = len(_CHECKSUM_PREFIX) + 64 + len(b'"}}')


class CheckpointError(ValueError):
    """A file that is not a readable rnnfast checkpoint: corrupt, truncated, foreign or from a newer rnnfast."""


@dataclass(repr=False)
class Checkpoint:
    """What ``load`` returns: the rebuilt ``model`` (in its constructor's default, training, mode; evaluation
    mode when quantized), the
    ``tokenizer`` and ``optimizer_state`` (None when not saved), ``step`` (``extra["step"]``, default 0),
    ``extra``, the model's ``config``, the file's format ``version``, its ``path`` and the named ``arrays``
    saved with it."""

    model: Any
    tokenizer: Any
    optimizer_state: dict | None
    step: int
    extra: dict
    config: dict
    version: int
    path: str
    arrays: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Checkpoint({self.path!r}, model={self.model!r}, tokenizer={self.tokenizer!r}, "
            f"optimizer_state={'None' if self.optimizer_state is None else 'dict'}, step={self.step})"
        )


# ----- JSON values ------------------------------------------------------------------------------------------
def _plain_json(value, name: str):
    """``value`` as plain JSON types (numpy scalars become Python numbers, tuples lists), or an error naming
    where in ``value`` the offending part is."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"{name}: got {value}, expected a finite number (JSON has no NaN or Inf)")
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{name}: got key {key!r} ({type(key).__name__}), expected str keys")
            out[key] = _plain_json(item, f"{name}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        # Rows of plain floats (a carried recurrent state is tens of thousands of them) skip the per-item call.
        if all(type(item) is float for item in value):
            for i, item in enumerate(value):
                if not math.isfinite(item):
                    raise ValueError(f"{name}[{i}]: got {item}, expected a finite number (JSON has no NaN or Inf)")
            return list(value)
        return [_plain_json(item, f"{name}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{name}: got {type(value).__name__}, expected JSON data (str, number, bool, None, list, dict with str keys)"
    )


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


# ----- save -------------------------------------------------------------------------------------------------
def _tensor(value, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: got {type(value).__name__}, expected a numpy array")
    native = value.dtype.newbyteorder("=")
    if native not in _DTYPE_NAMES:
        raise TypeError(
            f"{name}: got dtype {value.dtype}, expected one of {', '.join(sorted(str(d) for d in _DTYPE_NAMES))}"
        )
    # asarray rather than ascontiguousarray, which would turn a 0-d array into shape (1,).
    return np.asarray(value, dtype=native.newbyteorder("<"), order="C")


def _model_parts(model) -> tuple[dict, dict[str, np.ndarray]]:
    cls = type(model)
    if MODULE_TYPES.get(cls.__name__) is not cls:
        raise TypeError(
            f"model: got {cls.__name__}, expected an rnnfast model (a Module subclass registered in "
            f"rnnfast.module.MODULE_TYPES) so that load can rebuild it"
        )
    try:
        config = model.config()
    except NotImplementedError as exc:
        raise TypeError(f"model: {exc}") from None
    config = _plain_json(config, "model.config()")
    if not isinstance(config, dict):
        raise TypeError(f"model.config(): got {type(config).__name__}, expected a dict of constructor arguments")
    tensors = {}
    for name, value in model.state_dict().items():
        arr = _tensor(value, f"model parameter {name!r}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"model: parameter {name!r} contains NaN or Inf; such weights cannot be loaded again")
        tensors["model." + name] = arr
    return config, tensors


def _optimizer_parts(optimizer) -> tuple[dict, dict[str, np.ndarray]]:
    """The optimizer's state dict (from ``optimizer.state_dict()`` or given as a mapping) split into JSON
    metadata and tensors."""
    state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else optimizer
    if not isinstance(state, Mapping):
        raise TypeError(
            f"optimizer: got {type(optimizer).__name__}, expected an optimizer with state_dict() or its state dict"
        )
    keys, values, tensors = [], {}, {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"optimizer state: got key {key!r} ({type(key).__name__}), expected str keys")
        keys.append(key)
        if isinstance(value, np.ndarray):
            tensors["optimizer." + key] = _tensor(value, f"optimizer state[{key!r}]")
        else:
            values[key] = _plain_json(value, f"optimizer state[{key!r}]")
    return {"keys": keys, "values": values}, tensors


def _tokenizer_json(tokenizer) -> str:
    if not hasattr(tokenizer, "to_dict"):
        raise TypeError(f"tokenizer: got {type(tokenizer).__name__}, expected a tokenizer from rnnfast.text")
    d = _plain_json(tokenizer.to_dict(), "tokenizer.to_dict()")
    try:
        tokenizer_from_dict(d)  # otherwise the checkpoint would fail only when loaded
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"tokenizer: its to_dict() does not describe a tokenizer load can rebuild ({exc})") from None
    return _dumps(d)


def _extra(extra) -> dict:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(f"extra: got {type(extra).__name__}, expected a dict of JSON data")
    extra = _plain_json(extra, "extra")
    _checks.positive_int(extra.get("step", 0), "extra['step']", minimum=0)
    return extra


def _check_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: got {type(path).__name__}, expected a file path (str or os.PathLike)")
    return os.fspath(path)


def save(path, model, tokenizer=None, optimizer=None, extra=None, arrays=None) -> None:
    """Write a checkpoint to ``path`` atomically: a crash or error midway leaves any earlier file intact.

    ``optimizer`` is an optimizer (its ``state_dict()`` is saved) or such a state dict; ``extra`` is JSON data,
    with ``extra["step"]`` (default 0) the training step ``load`` reports; ``arrays`` maps names to numeric
    arrays saved as tensors (``Checkpoint.arrays``).
    """
    path = _check_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: the directory of {path} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path} is a directory, expected a file name")
    from . import __version__  # at call time: rnnfast/__init__.py may import this module before setting it

    config, tensors = _model_parts(model)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "rnnfast_version": __version__,
        "model_class": type(model).__name__,
        "model_config": _dumps(config),
    }
    if model.weight_dtype != "float32":
        metadata["weight_dtype"] = model.weight_dtype
    if tokenizer is not None:
        metadata["tokenizer"] = _tokenizer_json(tokenizer)
    if optimizer is not None:
        optimizer_meta, optimizer_tensors = _optimizer_parts(optimizer)
        metadata["optimizer"] = _dumps(optimizer_meta)
        tensors.update(optimizer_tensors)
    if arrays is not None:
        if not isinstance(arrays, Mapping):
            raise TypeError(f"arrays: got {type(arrays).__name__}, expected a dict of arrays")
        tensors.update({f"state.{name}": _tensor(value, f"arrays[{name!r}]") for name, value in arrays.items()})
    extra = _extra(extra)
    if extra:
        metadata["extra"] = _dumps(extra)

    # Widest dtypes first keeps every tensor aligned to its item size, as the safetensors writer does.
    names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
    header, offset = {}, 0
    for name in names:
        arr = tensors[name]
        header[name] = {
            "dtype": _DTYPE_NAMES[arr.dtype.newbyteorder("=")],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    header["__metadata__"] = metadata
    core = _dumps(header).encode("ascii")
    digest = hashlib.sha256(core)
    chunks = [tensors[name].reshape(-1).view(np.uint8) for name in names]
    for chunk in chunks:
        digest.update(chunk)
    header_bytes = core[:-2] + _CHECKSUM_PREFIX + digest.hexdigest().encode("ascii") + b'"}}'
    header_bytes += b" " * (-(8 + len(header_bytes)) % 8)

    _write_atomically(path, directory, [struct.pack("<Q", len(header_bytes)), header_bytes, *chunks])


def _write_atomically(path: str, directory: str, chunks) -> None:
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for any new file.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable. Windows cannot open directories and some file systems refuse to sync them;
    the file's own data is synced already, so those cases are left to the OS."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----- load -------------------------------------------------------------------------------------------------
def _json_field(metadata: dict, key: str, kind: type, fail):
    if key not in metadata:
        fail(f"metadata has no {key!r}")
    try:
        value = json.loads(metadata[key])
    except (ValueError, RecursionError):
        fail(f"metadata {key!r} is not valid JSON")
    if not isinstance(value, kind):
        fail(f"metadata {key!r} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _read_header(f, size: int, fail) -> tuple[dict, bytes]:
    if size < 8:
        fail(f"only {size} bytes, too short to be a checkpoint (truncated or not a checkpoint)")
    (length,) = struct.unpack("<Q", f.read(8))
    if length > min(size - 8, MAX_HEADER_BYTES):
        first = f.read(1)
        if first == b"{" and length <= MAX_HEADER_BYTES:
            fail(f"truncated: the header needs {length} bytes but only {size - 8} follow")
        fail(
            "not an rnnfast checkpoint: it does not start with a safetensors header (length "
            f"{length} for a file of {size} bytes)"
        )
    raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        fail("not an rnnfast checkpoint, or a corrupt one: the header is not valid JSON")
    if not isinstance(header, dict):
        fail(f"not an rnnfast checkpoint: the header is a JSON {type(header).__name__}, expected an object")
    return header, raw


def _check_format(header: dict, fail) -> tuple[dict, int]:
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        fail(
            f"a safetensors file without rnnfast metadata (format {found!r}, expected {FORMAT!r}); it was not "
            "written by rnnfast.save"
        )
    if not all(isinstance(v, str) for v in metadata.values()):
        fail("metadata values must be strings")
    version = metadata.get("format_version", "")
    # The length limit keeps int() away from Python's limit on digits, a ValueError of its own.
    if not (
        isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 10 and int(version) >= 1
    ):
        fail(f"format_version {version!r} is not a positive integer (corrupt file)")
    version = int(version)
    if version > FORMAT_VERSION:
        fail(
            f"written by a newer rnnfast (checkpoint format {version}, this rnnfast reads up to "
            f"{FORMAT_VERSION}); upgrade rnnfast to load it"
        )
    return metadata, version


def _tensor_layout(header: dict, data_size: int, fail) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """Each tensor's dtype, shape and byte range, after checking that they agree and tile the data exactly."""
    layout = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            fail(f"tensor {name!r}: expected an entry with dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            fail(f"tensor {name!r}: dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            fail(f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            fail(f"tensor {name!r}: data_offsets {offsets!r} is not a [begin, end] pair with 0 <= begin <= end")
        np_dtype = np.dtype(_DTYPES[dtype])
        nbytes = math.prod(shape) * np_dtype.itemsize
        if offsets[1] - offsets[0] != nbytes:
            fail(
                f"tensor {name!r}: dtype {dtype} and shape {shape} need {nbytes} bytes but data_offsets "
                f"{offsets} span {offsets[1] - offsets[0]}"
            )
        layout[name] = (np_dtype, tuple(shape), offsets[0], offsets[1])
    end = 0
    for name, (_, _, begin, stop) in sorted(layout.items(), key=lambda item: item[1][2:]):
        if begin != end:
            fail(f"tensor {name!r}: starts at byte {begin} of the data, expected {end} (tensors must be back to back)")
        end = stop
    if end > data_size:
        fail(f"truncated: the tensors need {end} bytes of data but the file holds {data_size}")
    if end != data_size:
        fail(f"the file holds {data_size} bytes of data but the tensors cover {end}")
    return layout


def _verify_checksum(raw_header: bytes, data: bytes, fail) -> None:
    text = raw_header.rstrip(b" ")
    tail = text[-_CHECKSUM_TAIL_LEN:]
    expected = tail[len(_CHECKSUM_PREFIX) : -3]
    if (
        len(tail) != _CHECKSUM_TAIL_LEN
        or not tail.startswith(_CHECKSUM_PREFIX)
        or not tail.endswith(b'"}}')
        or not all(c in b"0123456789abcdef" for c in expected)
    ):
        fail("the checksum entry is missing or not where rnnfast writes it (the header was modified)")
    digest = hashlib.sha256(text[:-_CHECKSUM_TAIL_LEN] + b"}}")
    digest.update(data)
    if digest.hexdigest().encode("ascii") != expected:
        fail("checksum mismatch: the file is corrupt (changed bytes or an incomplete copy)")


def load(path) -> Checkpoint:
    """Read a checkpoint written by ``save``. Raises CheckpointError (a ValueError) naming the path and the
    problem for anything that is not an intact checkpoint this rnnfast can read."""
    path = _check_path(path)

    def fail(problem: str):
        raise CheckpointError(f"{path}: {problem}")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header, raw_header = _read_header(f, size, fail)
        metadata, version = _check_format(header, fail)
        layout = _tensor_layout(header, size - 8 - len(raw_header), fail)
        data = f.read()
    _verify_checksum(raw_header, data, fail)

    tensors = {
        name: np.frombuffer(data, dtype, math.prod(shape), begin).reshape(shape).astype(dtype.newbyteorder("="))
        for name, (dtype, shape, begin, _) in layout.items()
    }
    weights = {name[len("model.") :]: arr for name, arr in tensors.items() if name.startswith("model.")}
    optimizer_arrays = {
        name[len("optimizer.") :]: arr for name, arr in tensors.items() if name.startswith("optimizer.")
    }
    arrays = {name[len("state.") :]: arr for name, arr in tensors.items() if name.startswith("state.")}
    stray = [name for name in tensors if not name.startswith(("model.", "optimizer.", "state."))]
    if stray:
        fail(f"unexpected tensors {stray}, expected names starting with 'model.', 'optimizer.' or 'state.'")

    model_class = metadata.get("model_class")
    cls = MODULE_TYPES.get(model_class)
    if cls is None:
        fail(f"unknown model class {model_class!r}; this rnnfast knows {', '.join(sorted(MODULE_TYPES))}")
    config = _json_field(metadata, "model_config", dict, fail)
    try:
        model = cls(**config)
        if "weight_dtype" in metadata:
            model = model.quantize(metadata["weight_dtype"])
        model.load_state_dict(weights)
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        fail(f"cannot rebuild {model_class} from its config and weights: {exc}")

    tokenizer = None
    if "tokenizer" in metadata:
        tokenizer_dict = _json_field(metadata, "tokenizer", dict, fail)
        try:
            tokenizer = tokenizer_from_dict(tokenizer_dict)
        except (TypeError, ValueError) as exc:
            fail(f"cannot rebuild the tokenizer: {exc}")

    optimizer_state = None
    if "optimizer" in metadata:
        optimizer_state = _optimizer_state(_json_field(metadata, "optimizer", dict, fail), optimizer_arrays, fail)
    elif optimizer_arrays:
        fail(f"optimizer tensors {sorted(optimizer_arrays)} without optimizer metadata")

    extra = _json_field(metadata, "extra", dict, fail) if "extra" in metadata else {}
    step = extra.get("step", 0)
    if type(step) is not int or step < 0:
        fail(f"extra['step'] is {step!r}, expected a non-negative integer")
    return Checkpoint(
        model=model,
        tokenizer=tokenizer,
        optimizer_state=optimizer_state,
        step=step,
        extra=extra,
        config=config,
        version=version,
        path=path,
        arrays=arrays,
    )


def _optimizer_state(meta: dict, arrays: dict[str, np.ndarray], fail) -> dict:
    keys, values = meta.get("keys"), meta.get("values")
    if not isinstance(keys, list) or not isinstance(values, dict):
        fail("optimizer metadata needs 'keys' (a list) and 'values' (an object)")
    if sorted(keys, key=str) != sorted([*values, *arrays], key=str):
        fail("optimizer metadata keys do not match its values and tensors")
    return {key: arrays[key] if key in arrays else values[key] for key in keys}
