"""Argument validation shared by every public entry point: each failure names the argument, what it got and what
was expected, and raises TypeError or ValueError."""

from __future__ import annotations

import numbers
import os

import numpy as np

_INT64_RANGE = (-(2**63), 2**63 - 1)


def _to_numpy(value, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensors, including ones that require grad
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: got {type(value).__name__} that is not array-like ({exc})") from None


def describe(arr: np.ndarray) -> str:
    return f"shape {tuple(arr.shape)} and dtype {arr.dtype}"


def as_float_array(value, name: str, dtype, ndim: int | None = None) -> np.ndarray:
    """A C-contiguous array of ``dtype`` from anything numeric (no bools, complex numbers, strings or objects).

    A 0-d input stays 0-d. Finite values beyond the range of ``dtype`` (float64 data for a float32 layer) raise
    ValueError naming the argument rather than turning into infinities."""
    arr = _to_numpy(value, name)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected real numbers (float or int)")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: got {arr.ndim}-d array with shape {tuple(arr.shape)}, expected {ndim}-d")
    dtype = np.dtype(dtype)
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= dtype.itemsize:
        return np.asarray(arr, dtype=dtype, order="C")
    # Narrowing: numpy would warn about the overflow (an exception under -W error) before anyone could name the
    # argument, so the cast ignores it and the values that became infinite are reported instead.
    with np.errstate(over="ignore"):
        out = np.asarray(arr, dtype=dtype, order="C")
    overflowed = np.isinf(out)
    if overflowed.any():
        overflowed &= np.isfinite(arr)
        if overflowed.any():
            bad = arr[overflowed].flat[0]
            raise ValueError(
                f"{name}: got {bad:.6g}, beyond the range of {dtype} (magnitude at most "
                f"{np.finfo(dtype).max:.6g}); expected values that {dtype} can hold"
            )
    return out


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or Inf value(s), expected finite numbers")


def as_int_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    """An int64 array from integer data (a 0-d input stays 0-d); floats are refused rather than silently
    truncated."""
    arr = _to_numpy(value, name)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all() and (arr == np.round(arr)).all():
            check_range(arr, name, *_INT64_RANGE)
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "f" and arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name}: got dtype {arr.dtype}, expected integers")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: got {arr.ndim}-d array with shape {tuple(arr.shape)}, expected {ndim}-d")
    if arr.dtype == np.uint64 and arr.size and arr.max() > _INT64_RANGE[1]:
        raise ValueError(f"{name}: got value {arr.max()}, expected at most {_INT64_RANGE[1]}")
    return np.asarray(arr, dtype=np.int64, order="C")


def check_range(arr: np.ndarray, name: str, low: int, high: int) -> None:
    """Every value in low..high inclusive."""
    if arr.size == 0:
        return
    lo, hi = int(arr.min()), int(arr.max())
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        raise ValueError(f"{name}: got {bad}, expected values in {low}..{high}")


def integer(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """A Python int in low..high (inclusive; None is unbounded); bools and floats are refused."""
    if low is not None and high is not None:
        expected = f"an integer in {low}..{high}"
    elif low is not None:
        expected = f"an integer >= {low}"
    else:
        expected = "an integer" if high is None else f"an integer <= {high}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {value!r} ({type(value).__name__}), expected {expected}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: got {value}, expected {expected}")
    return int(value)


def positive_int(value, name: str, minimum: int = 1) -> int:
    return integer(value, name, low=minimum)


def real(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: got {value!r} ({type(value).__name__}), expected a number")
    value = float(value)
    ok = np.isfinite(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = (
            ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + (")" if high_open or high is None else "]")
        )
        raise ValueError(f"{name}: got {value}, expected a finite number in {interval}")
    return value


def choice(value, name: str, options) -> str:
    if value not in options:
        raise ValueError(f"{name}: got {value!r}, expected one of {', '.join(repr(o) for o in options)}")
    return value


def float_dtype(value, name: str = "dtype") -> np.dtype:
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name}: got {value!r}, expected 'float32' or 'float64'") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: got {dtype}, expected 'float32' or 'float64'")
    return dtype


def rng(seed, name: str = "seed") -> np.random.Generator:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"{name}: got {seed!r}, expected None or a non-negative integer")
    return np.random.default_rng(seed)


# cgroup v2, then v1: a container's memory limit, usually far below the machine's physical memory.
_CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit() -> int:
    """The bytes this process can have at most: physical memory, or its cgroup's limit where that is lower."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf names on this platform
        pass
    for path in _CGROUP_MEMORY_LIMITS:
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 writes a huge number instead
            limits.append(int(text))
    return min(limits) if limits else 1 << 46


def check_parameter_memory(count: int, largest: int, dtype, sizes: str) -> None:
    """Refuse to build ``count`` parameters of ``dtype`` (the largest tensor holding ``largest`` values) when they
    cannot fit in memory, before numpy or the OS kills the process trying. ``sizes`` names the arguments that set
    the size, with their values.

    What building and training really hold: each value and its gradient, twice over while
    ``Module.parameters()`` copies them into one arena, plus the float64 initial values of one tensor at a time.
    """
    need = 4 * count * np.dtype(dtype).itemsize + 8 * largest
    limit = memory_limit()
    if need > limit:
        raise MemoryError(
            f"parameters: {count} values for {sizes} ({need / 2**30:.1f} GiB with their gradients "
            f"and working copies) exceed this machine's memory ({limit / 2**30:.1f} GiB)"
        )
