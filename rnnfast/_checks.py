"""Argument validation shared by every public entry point: each failure names the argument, what it got and what
was expected, and raises TypeError or ValueError."""

from __future__ import annotations

import numbers

import numpy as np


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
    """A C-contiguous array of ``dtype`` from anything numeric (no bools, complex numbers, strings or objects)."""
    arr = _to_numpy(value, name)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected real numbers (float or int)")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: got {arr.ndim}-d array with shape {tuple(arr.shape)}, expected {ndim}-d")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or Inf value(s), expected finite numbers")


def as_int_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    """An int64 array from integer data; floats are refused rather than silently truncated."""
    arr = _to_numpy(value, name)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all() and (arr == np.round(arr)).all():
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "f" and arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name}: got dtype {arr.dtype}, expected integers")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: got {arr.ndim}-d array with shape {tuple(arr.shape)}, expected {ndim}-d")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: got value {arr.max()}, expected at most {np.iinfo(np.int64).max}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_range(arr: np.ndarray, name: str, low: int, high: int) -> None:
    """Every value in low..high inclusive."""
    if arr.size == 0:
        return
    lo, hi = int(arr.min()), int(arr.max())
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        raise ValueError(f"{name}: got {bad}, expected values in {low}..{high}")


def positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {value!r} ({type(value).__name__}), expected an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}: got {value}, expected an integer >= {minimum}")
    return int(value)


def real(value, name: str, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
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
        interval = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + (")" if high_open or high is None else "]")
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
