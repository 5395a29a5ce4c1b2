"""Audio features for speech models: log mel filterbank energies and MFCCs, computed with numpy alone.

The conventions are those of python_speech_features 0.6 (its ``fbank``, ``logfbank`` and ``mfcc``), which these
functions reproduce to float32 rounding when given the same settings (tests/test_audio.py checks this):

1. **Pre-emphasis** ``y[0] = x[0]`` and ``y[n] = x[n] - a * x[n-1]`` with ``a = preemphasis`` (0 disables it).
2. **Framing** frame length ``L = round(sample_rate * frame_ms / 1000)`` and hop ``H = round(sample_rate *
   hop_ms / 1000)`` samples, rounding halves up (229.5 -> 230; the product is first rounded to 9 decimals so that
   float error in it does not move a half). Frame ``t`` holds samples ``t*H .. t*H + L - 1``. The number of frames
   is ``1`` when ``N <= L`` (``N`` samples) and ``1 + ceil((N - L) / H)`` otherwise, so the last frame reaches
   the last sample: it, and the only frame of a signal shorter than ``L``, is padded with zeros at its end, and no
   trailing sample is dropped (with ``H > L`` the samples between frames are skipped). See :func:`frame_count`.
3. **Window** multiplies each frame: ``"hamming"`` is ``numpy.hamming(L)`` (``0.54 - 0.46 cos(2 pi n / (L-1))``),
   ``"hann"`` is ``numpy.hanning(L)`` (``0.5 - 0.5 cos(2 pi n / (L-1))``), both symmetric, and ``"rectangular"``
   is all ones (python_speech_features' default). For ``L = 1`` every window is ``[1.0]``.
4. **Power spectrum** ``P[t, k] = |FFT_nfft(frame_t)[k]|^2 / n_fft`` for the ``n_fft // 2 + 1`` one-sided bins
   ``k = 0 .. n_fft // 2`` (frequency ``k * sample_rate / n_fft``), each frame zero-padded to ``n_fft`` samples.
   ``n_fft`` defaults to the smallest power of two ``>= L`` (512 for 25 ms at 16 kHz, 256 at 8 kHz) and may not be
   smaller than ``L``. The bins are not doubled for the negative frequencies.
5. **Mel scale** HTK's ``mel = 2595 * log10(1 + f / 700)``, ``f = 700 * (10 ** (mel / 2595) - 1)``.
6. **Triangular filters**, built as python_speech_features builds them: ``n_mels + 2`` points equally spaced in
   mel from ``mel(fmin)`` to ``mel(fmax)`` are mapped to integer bins ``b_j = floor((n_fft + 1) * f_j /
   sample_rate)``; filter ``j`` (0-based) is ``(k - b_j) / (b_{j+1} - b_j)`` for ``b_j <= k < b_{j+1}``, ``(b_{j+2}
   - k) / (b_{j+2} - b_{j+1})`` for ``b_{j+1} <= k < b_{j+2}`` and 0 elsewhere: peak height 1, no area
   normalisation (unlike librosa's ``htk=True, norm=None``, whose edges are not rounded to bins). A set of bands
   that leaves some filter all zero (too many bands for the bins) is refused with a ValueError naming ``n_mels``.
7. **Filterbank energies** ``E[t, j] = sum_k P[t, k] * filter_j[k]``; **log** is the natural log, and energies
   below float64 ``eps`` (2.220446049250313e-16), zeros included, are raised to it first, so silence gives
   ``log(eps) = -36.04365338911715`` rather than ``-inf``. (python_speech_features replaces only exact zeros with
   ``eps``; the two differ only for an energy strictly between 0 and ``eps``.)
8. **MFCC** the orthonormal DCT-II (:func:`dct_matrix`, as ``scipy.fft.dct(..., type=2, norm="ortho")``) of each
   frame's ``n_mels`` log energies, first ``n_mfcc`` coefficients kept; then the **lifter** ``c_n *= 1 + (lifter /
   2) * sin(pi * n / lifter)`` (``lifter = 0`` disables it); then, with ``append_energy``, ``c_0`` is **replaced**
   by the log frame energy ``log(max(sum_k P[t, k], eps))``: the energy of the pre-emphasised, windowed frame, summed
   over the one-sided bins of step 4.

Computation is in float64; the features come back as float32. The defaults (Hamming window, 40 mel bands for
:func:`logmel`, ``n_fft`` from the frame length) are not python_speech_features' (rectangular window, 26 bands,
``nfft=512``): pass those to get its defaults' numbers.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "WINDOWS",
    "dct_matrix",
    "features",
    "frame_count",
    "frames",
    "hz_to_mel",
    "logmel",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
]

WINDOWS = ("hamming", "hann", "rectangular")
KINDS = ("logmel", "mfcc", "raw")
_EPS = float(np.finfo(np.float64).eps)


# ----- argument checks: every failure names the argument ----------------------------------------------------
def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: got {type(value).__name__} {value!r}, expected a real number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: got {value}, expected a finite number")
    return value


def _positive(value, name: str) -> float:
    value = _real(value, name)
    if value <= 0:
        raise ValueError(f"{name}: got {value:g}, expected a number > 0")
    return value


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {type(value).__name__} {value!r}, expected an int")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: got {value}, expected an int >= {minimum}")
    return value


def _signal(value, name: str) -> np.ndarray:
    """A 1-d float64 copy of a non-empty, finite, real-valued signal."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: got {type(value).__name__} that is not array-like ({exc})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected real numbers (float or int samples)")
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: got {arr.ndim}-d array with shape {tuple(arr.shape)}, expected a 1-d signal "
            f"(one channel: mix or pick a channel first)"
        )
    if arr.size == 0:
        raise ValueError(f"{name}: got an empty signal, expected at least one sample")
    arr = np.array(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        first = int(np.argmin(finite))
        raise ValueError(
            f"{name}: contains {arr.size - int(finite.sum())} NaN or Inf value(s) (the first at index "
            f"{first}), expected finite numbers"
        )
    return arr


def _samples(ms: float, sample_rate: float, name: str) -> int:
    """``ms`` milliseconds in samples, rounded half up (after rounding the product to 9 decimals)."""
    exact = round(sample_rate * ms / 1000.0, 9)
    count = math.floor(exact + 0.5)
    if count < 1:
        raise ValueError(
            f"{name}: got {ms:g} ms, which at sample_rate {sample_rate:g} Hz is {exact:g} samples and "
            f"rounds to 0; expected at least one sample (>= {500.0 / sample_rate:.6g} ms)"
        )
    return int(count)


def _window(name_of_window, length: int) -> np.ndarray:
    if name_of_window == "hamming":
        return np.hamming(length)
    if name_of_window == "hann":
        return np.hanning(length)
    if name_of_window == "rectangular":
        return np.ones(length)
    raise ValueError(f"window: got {name_of_window!r}, expected one of {', '.join(map(repr, WINDOWS))}")


class _Framing:
    """Checked framing settings for one sample rate."""

    def __init__(self, sample_rate, frame_ms, hop_ms, window, preemphasis):
        self.sample_rate = _positive(sample_rate, "sample_rate")
        self.frame_len = _samples(_positive(frame_ms, "frame_ms"), self.sample_rate, "frame_ms")
        self.hop = _samples(_positive(hop_ms, "hop_ms"), self.sample_rate, "hop_ms")
        if not isinstance(window, str):
            raise TypeError(
                f"window: got {type(window).__name__} {window!r}, expected one of {', '.join(map(repr, WINDOWS))}"
            )
        self.window = _window(window, self.frame_len)
        self.preemphasis = _real(preemphasis, "preemphasis")
        if not 0.0 <= self.preemphasis <= 1.0:
            raise ValueError(
                f"preemphasis: got {self.preemphasis:g}, expected a coefficient in [0, 1] (0 disables the filter)"
            )

    def frames(self, x: np.ndarray) -> np.ndarray:
        """(T, frame_len) float64 frames of the checked signal ``x``: pre-emphasised, zero-padded, windowed."""
        if self.preemphasis:
            x = np.append(x[0], x[1:] - self.preemphasis * x[:-1])
        count = _count(x.size, self.frame_len, self.hop)
        padded = np.zeros((count - 1) * self.hop + self.frame_len)
        padded[: x.size] = x
        starts = np.arange(count) * self.hop
        return padded[starts[:, None] + np.arange(self.frame_len)[None, :]] * self.window


def _count(n_samples: int, frame_len: int, hop: int) -> int:
    return 1 if n_samples <= frame_len else 1 + -(-(n_samples - frame_len) // hop)


# ----- public helpers ---------------------------------------------------------------------------------------
def frame_count(n_samples, sample_rate, *, frame_ms=25.0, hop_ms=10.0) -> int:
    """How many frames a signal of ``n_samples`` samples gives: 1 when ``n_samples <= L``, else ``1 + ceil((n_samples
    - L) / H)``, with ``L`` and ``H`` the frame length and hop in samples (module docstring, step 2)."""
    n_samples = _int(n_samples, "n_samples", 1)
    framing = _Framing(sample_rate, frame_ms, hop_ms, "rectangular", 0.0)
    return _count(n_samples, framing.frame_len, framing.hop)


def frames(signal, sample_rate, *, frame_ms=25.0, hop_ms=10.0, window="rectangular", preemphasis=0.0) -> np.ndarray:
    """The ``(frame_count, L)`` float32 frames the features are computed from (module docstring, steps 1-3).

    With the defaults these are the plain samples, cut into frames of ``L = round(sample_rate * frame_ms / 1000)``
    samples every ``H = round(sample_rate * hop_ms / 1000)``, the last one zero-padded; ``window`` (``"hamming"``,
    ``"hann"`` or ``"rectangular"``) and ``preemphasis`` apply as in :func:`logmel`."""
    framing = _Framing(sample_rate, frame_ms, hop_ms, window, preemphasis)
    return framing.frames(_signal(signal, "signal")).astype(np.float32)


def hz_to_mel(hz):
    """HTK's mel scale: ``2595 * log10(1 + hz / 700)`` (elementwise, float64)."""
    return 2595 * np.log10(1 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """The inverse of :func:`hz_to_mel`: ``700 * (10 ** (mel / 2595) - 1)`` (elementwise, float64)."""
    return 700 * (10 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1)


def _band_limits(fmin, fmax, sample_rate: float) -> tuple[float, float]:
    nyquist = sample_rate / 2
    fmin = _real(fmin, "fmin")
    if not 0.0 <= fmin < nyquist:
        raise ValueError(f"fmin: got {fmin:g} Hz, expected 0 <= fmin < sample_rate / 2 = {nyquist:g} Hz")
    if fmax is None:
        return fmin, nyquist
    fmax = _real(fmax, "fmax")
    if not fmin < fmax <= nyquist:
        raise ValueError(
            f"fmax: got {fmax:g} Hz, expected fmin = {fmin:g} < fmax <= sample_rate / 2 = "
            f"{nyquist:g} Hz (or None for sample_rate / 2)"
        )
    return fmin, fmax


def _filters(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    n_bins = n_fft // 2 + 1
    if n_mels > n_bins:
        raise ValueError(
            f"n_mels: got {n_mels} mel bands, more than the n_fft // 2 + 1 = {n_bins} frequency bins "
            f"of n_fft = {n_fft}; expected fewer bands or a larger n_fft"
        )
    points = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    edges = np.floor((n_fft + 1) * mel_to_hz(points) / sample_rate)
    k = np.arange(n_bins, dtype=np.float64)[None, :]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where((k >= lo) & (k < mid), (k - lo) / (mid - lo), 0.0)
        falling = np.where((k >= mid) & (k < hi), (hi - k) / (hi - mid), 0.0)
    bank = rising + falling
    empty = np.flatnonzero(~bank.any(axis=1))
    if empty.size:
        raise ValueError(
            f"n_mels: {n_mels} mel bands between fmin = {fmin:g} Hz and fmax = {fmax:g} Hz do not fit "
            f"the {n_bins} frequency bins of n_fft = {n_fft} at sample_rate {sample_rate:g} Hz: "
            f"{empty.size} filter(s) (band {int(empty[0])} first) would cover no bin and stay all zero; "
            f"expected fewer bands, a larger n_fft or a wider fmin..fmax"
        )
    return bank


def _n_fft(n_fft, frame_len: int) -> int:
    if n_fft is None:
        return 1 << (frame_len - 1).bit_length()
    n_fft = _int(n_fft, "n_fft", 1)
    if n_fft < frame_len:
        raise ValueError(
            f"n_fft: got {n_fft}, shorter than the frame of {frame_len} samples; expected n_fft >= "
            f"{frame_len} (or None for the next power of two, {1 << (frame_len - 1).bit_length()})"
        )
    return n_fft


def mel_filterbank(sample_rate, n_fft, n_mels=40, *, fmin=0.0, fmax=None) -> np.ndarray:
    """The ``(n_mels, n_fft // 2 + 1)`` float64 triangular filters of module docstring steps 5-6, one per row.

    Raises ValueError naming ``n_mels`` when a filter would be all zero (too many bands for the bins)."""
    sample_rate = _positive(sample_rate, "sample_rate")
    n_fft = _int(n_fft, "n_fft", 1)
    n_mels = _int(n_mels, "n_mels", 1)
    fmin, fmax = _band_limits(fmin, fmax, sample_rate)
    return _filters(n_mels, n_fft, sample_rate, fmin, fmax)


def dct_matrix(n_out, n_in=None) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal ``n_in x n_in`` DCT-II matrix (float64; ``n_in`` defaults to
    ``n_out``): ``C[k, m] = s_k * cos(pi * k * (2m + 1) / (2 n_in))`` with ``s_0 = sqrt(1 / n_in)`` and ``s_k =
    sqrt(2 / n_in)`` otherwise, so ``C @ x`` equals ``scipy.fft.dct(x, type=2, norm="ortho")[:n_out]`` and the
    square matrix is orthogonal."""
    n_out = _int(n_out, "n_out", 1)
    n_in = n_out if n_in is None else _int(n_in, "n_in", 1)
    if n_out > n_in:
        raise ValueError(f"n_out: got {n_out}, more than n_in = {n_in}; expected n_out <= n_in")
    k = np.arange(n_out, dtype=np.float64)[:, None]
    m = np.arange(n_in, dtype=np.float64)[None, :]
    out = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * m + 1) / (2 * n_in))
    out[0] = np.sqrt(1.0 / n_in)
    return out


# ----- features -----------------------------------------------------------------------------------------------
def _energies(signal, sample_rate, name, n_mels, frame_ms, hop_ms, n_fft, preemphasis, window, fmin, fmax):
    """(mel energies (T, n_mels), frame energies (T,)) in float64, every argument checked before any work."""
    framing = _Framing(sample_rate, frame_ms, hop_ms, window, preemphasis)
    n_mels = _int(n_mels, "n_mels", 1)
    n_fft = _n_fft(n_fft, framing.frame_len)
    fmin, fmax = _band_limits(fmin, fmax, framing.sample_rate)
    bank = _filters(n_mels, n_fft, framing.sample_rate, fmin, fmax)
    x = _signal(signal, name)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, naming the signal
        power = (1.0 / n_fft) * np.square(np.abs(np.fft.rfft(framing.frames(x), n_fft)))
        energy = np.sum(power, axis=1)
        mel = np.dot(power, bank.T)
    if not (np.isfinite(energy).all() and np.isfinite(mel).all()):
        raise ValueError(
            f"{name}: its power spectrum overflows float64 (largest |sample| "
            f"{float(np.max(np.abs(x))):.6g}); expected samples of a sane scale, e.g. in [-1, 1]"
        )
    return mel, energy


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, _EPS))


def logmel(
    signal,
    sample_rate,
    *,
    n_mels=40,
    frame_ms=25.0,
    hop_ms=10.0,
    n_fft=None,
    preemphasis=0.97,
    window="hamming",
    fmin=0.0,
    fmax=None,
) -> np.ndarray:
    """Log mel filterbank energies, ``(frame_count, n_mels)`` float32: ``log(max(E, eps))`` with the conventions
    of the module docstring (steps 1-7).

    ``signal`` is 1-d (one channel) real samples, finite, at least one sample; ``sample_rate`` in Hz (> 0).
    ``frame_ms``/``hop_ms`` set the frame length and hop (rounded half up to whole samples), ``n_fft`` the FFT size
    (default: next power of two >= the frame length), ``preemphasis`` the coefficient in [0, 1] (0: off),
    ``window`` one of ``"hamming"``, ``"hann"``, ``"rectangular"``, ``fmin``/``fmax`` the band edges in Hz
    (``fmax=None``: ``sample_rate / 2``).

    Equals ``numpy.log(python_speech_features.fbank(signal, sample_rate, frame_ms / 1000, hop_ms / 1000, n_mels,
    n_fft, fmin, fmax, preemphasis, winfunc)[0])`` with ``winfunc`` ``numpy.hamming``/``numpy.hanning``/ones."""
    mel, _ = _energies(signal, sample_rate, "signal", n_mels, frame_ms, hop_ms, n_fft, preemphasis, window, fmin, fmax)
    return _log(mel).astype(np.float32)


def mfcc(
    signal,
    sample_rate,
    *,
    n_mfcc=13,
    n_mels=26,
    frame_ms=25.0,
    hop_ms=10.0,
    n_fft=None,
    preemphasis=0.97,
    window="hamming",
    fmin=0.0,
    fmax=None,
    lifter=22,
    append_energy=True,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, ``(frame_count, n_mfcc)`` float32 (module docstring, steps 1-8).

    The log mel energies of :func:`logmel` (with ``n_mels`` bands, default 26) go through the orthonormal DCT-II,
    of which the first ``n_mfcc <= n_mels`` coefficients are kept and multiplied by ``1 + (lifter / 2) * sin(pi * n
    / lifter)`` (``lifter`` >= 0; 0 disables it). With ``append_energy`` (default True) ``c_0`` is then replaced by
    ``log(max(frame energy, eps))``, the frame energy being the sum of the frame's one-sided power spectrum.

    Equals ``python_speech_features.mfcc(signal, sample_rate, frame_ms / 1000, hop_ms / 1000, n_mfcc, n_mels, n_fft,
    fmin, fmax, preemphasis, lifter, append_energy, winfunc)``."""
    n_mfcc = _int(n_mfcc, "n_mfcc", 1)
    n_mels_checked = _int(n_mels, "n_mels", 1)
    if n_mfcc > n_mels_checked:
        raise ValueError(f"n_mfcc: got {n_mfcc}, more than n_mels = {n_mels_checked}; expected n_mfcc <= n_mels")
    lifter = _real(lifter, "lifter")
    if lifter < 0:
        raise ValueError(f"lifter: got {lifter:g}, expected a number >= 0 (0 disables liftering)")
    if not isinstance(append_energy, (bool, np.bool_)):
        raise TypeError(f"append_energy: got {type(append_energy).__name__} {append_energy!r}, expected a bool")
    mel, energy = _energies(
        signal, sample_rate, "signal", n_mels_checked, frame_ms, hop_ms, n_fft, preemphasis, window, fmin, fmax
    )
    cepstra = np.dot(_log(mel), dct_matrix(n_mfcc, n_mels_checked).T)
    if lifter > 0:
        cepstra *= 1 + (lifter / 2.0) * np.sin(np.pi * np.arange(n_mfcc) / lifter)
    if append_energy:
        cepstra[:, 0] = _log(energy)
    return cepstra.astype(np.float32)


def features(signals, sample_rate, kind="logmel", **options) -> list:
    """Features of each signal of a list: a list of ``(T_i, F)`` float32 arrays, in order.

    ``kind="logmel"`` gives :func:`logmel` (``F = n_mels``), ``"mfcc"`` :func:`mfcc` (``F = n_mfcc``), both with
    ``options`` passed on; ``"raw"`` gives each signal itself as a ``(N_i, 1)`` column (``F = 1``) and takes no
    options. ``signals`` is a list (or any iterable, or a 2-d array, row by row) of 1-d signals, all at
    ``sample_rate``; errors about one of them name it as ``signals[i]``. Each result suits a recurrent layer's
    (time, features) input. An empty list gives an empty list."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind: got {kind!r}, expected one of {', '.join(map(repr, KINDS))}")
    if isinstance(signals, (str, bytes)):
        raise TypeError(f"signals: got {type(signals).__name__}, expected a list of 1-d signals")
    if isinstance(signals, np.ndarray) and signals.ndim == 1 and signals.dtype.kind in "fiu":
        raise ValueError(
            f"signals: got one 1-d signal of {signals.size} samples, expected a list of signals (wrap it: [signal])"
        )
    try:
        items = list(signals)
    except TypeError:
        raise TypeError(f"signals: got {type(signals).__name__}, expected a list of 1-d signals") from None
    if items and all(isinstance(item, numbers.Real) for item in items):
        raise ValueError(
            f"signals: got a list of {len(items)} numbers, which is one signal; expected a list of "
            f"signals (wrap it: [signal])"
        )
    if kind == "raw":
        if options:
            raise TypeError(f"options: kind='raw' takes none, got {', '.join(sorted(options))}")
        _positive(sample_rate, "sample_rate")
        out = []
        for i, item in enumerate(items):
            x = _signal(item, f"signals[{i}]")
            if np.max(np.abs(x)) > np.finfo(np.float32).max:
                raise ValueError(f"signals[{i}]: holds values beyond the range of float32")
            out.append(x.astype(np.float32).reshape(-1, 1))
        return out
    compute = logmel if kind == "logmel" else mfcc
    out = []
    for i, item in enumerate(items):
        x = _signal(item, f"signals[{i}]")
        try:
            out.append(compute(x, sample_rate, **options))
        except ValueError as exc:  # name the signal as the caller knows it
            message = str(exc)
            if not message.startswith("signal:"):
                raise
            raise ValueError(f"signals[{i}]:{message[len('signal:') :]}") from None
    return out
