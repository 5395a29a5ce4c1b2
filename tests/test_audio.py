"""Audio features: exact agreement with python_speech_features 0.6 on sweeps, noise and short signals at 8, 16 and
22.05 kHz, plus hand-worked checks (frame counts and rounding, power-spectrum scale, a tone's band, the DCT, the
lifter, frame energy) and argument errors that name the argument."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import rnnfast.audio as audio

RTOL = 1e-4
LOG_EPS = math.log(np.finfo(np.float64).eps)  # -36.04365338911715
WINFUNCS = {"hamming": np.hamming, "hann": np.hanning, "rectangular": lambda n: np.ones((n,))}


# ----- the reference ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def psf():
    """python_speech_features, or a skip; with RNNFAST_REQUIRE_AUDIO_REF=1 a missing reference fails instead."""
    if os.environ.get("RNNFAST_REQUIRE_AUDIO_REF", "") == "1":
        try:
            import python_speech_features  # noqa: F401
        except ImportError as exc:
            pytest.fail(
                f"RNNFAST_REQUIRE_AUDIO_REF=1 but python_speech_features cannot be imported ({exc}); "
                f"pip install python_speech_features==0.6 scipy"
            )
    return pytest.importorskip("python_speech_features", reason="python_speech_features (and scipy) not installed")


def sweep(sr, seconds=1.0, f0=100.0):
    """A linear sine sweep from f0 to 0.45 * sr, amplitude 0.5."""
    t = np.arange(int(sr * seconds)) / sr
    f1 = 0.45 * sr
    return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))


def noise(sr, seconds=1.0, seed=0):
    return 0.1 * np.random.default_rng(seed).standard_normal(int(sr * seconds))


def short(sr):
    """47 ms (a few frames, the last one padded) of a tone plus noise."""
    n = int(0.047 * sr)
    return 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sr) + noise(sr, 0.047, seed=1)[:n]


def tiny(sr):
    """Shorter than one 25 ms frame: a single zero-padded frame."""
    return noise(sr, 0.01, seed=2)


SIGNALS = {"sweep": sweep, "noise": noise, "short": short, "tiny": tiny}

CASES = [
    dict(sample_rate=16000, n_mels=40, window="hamming", preemphasis=0.97),
    dict(sample_rate=16000, n_mels=26, window="hann", preemphasis=0.0),
    dict(sample_rate=16000, n_mels=80, window="hamming", preemphasis=0.97, n_fft=1024),
    dict(sample_rate=16000, n_mels=40, window="rectangular", preemphasis=0.0, frame_ms=20.0, hop_ms=5.0),
    dict(sample_rate=8000, n_mels=23, window="hamming", preemphasis=0.97),
    dict(sample_rate=8000, n_mels=40, window="hann", preemphasis=0.0, n_fft=512),
    dict(sample_rate=22050, n_mels=40, window="hann", preemphasis=0.95, fmin=64.0, fmax=8000.0),
]


def case_id(case):
    return "-".join(f"{k}={v}" for k, v in case.items())


def reference_fbank(psf, x, case):
    """python_speech_features.fbank with this module's settings and defaults spelled out."""
    sr = case["sample_rate"]
    frame_ms, hop_ms = case.get("frame_ms", 25.0), case.get("hop_ms", 10.0)
    frame_len = math.floor(sr * frame_ms / 1000 + 0.5)
    n_fft = case.get("n_fft") or 1 << (frame_len - 1).bit_length()
    return psf.fbank(
        x,
        sr,
        frame_ms / 1000,
        hop_ms / 1000,
        case["n_mels"],
        n_fft,
        case.get("fmin", 0.0),
        case.get("fmax"),
        case["preemphasis"],
        WINFUNCS[case["window"]],
    )


def options(case):
    return {k: v for k, v in case.items() if k != "sample_rate"}


def assert_rel(got, want, rtol=RTOL):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    assert rel.max() <= rtol, f"max relative error {rel.max():.3g} at {np.unravel_index(rel.argmax(), rel.shape)}"


# ----- agreement with python_speech_features -----------------------------------------------------------------
@pytest.mark.parametrize("signal_name", sorted(SIGNALS))
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_logmel_matches_reference(psf, case, signal_name):
    x = SIGNALS[signal_name](case["sample_rate"])
    got = audio.logmel(x, case["sample_rate"], **options(case))
    want = np.log(reference_fbank(psf, x, case)[0])
    assert got.dtype == np.float32 and got.shape == want.shape
    assert_rel(got, want)


@pytest.mark.parametrize("signal_name", sorted(SIGNALS))
@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("n_mfcc,lifter,append_energy", [(13, 22, True), (20, 0, False), (12, 15, True)])
def test_mfcc_matches_reference(psf, case, signal_name, n_mfcc, lifter, append_energy):
    x = SIGNALS[signal_name](case["sample_rate"])
    sr = case["sample_rate"]
    frame_ms, hop_ms = case.get("frame_ms", 25.0), case.get("hop_ms", 10.0)
    frame_len = math.floor(sr * frame_ms / 1000 + 0.5)
    n_fft = case.get("n_fft") or 1 << (frame_len - 1).bit_length()
    want = psf.mfcc(
        x,
        sr,
        frame_ms / 1000,
        hop_ms / 1000,
        n_mfcc,
        case["n_mels"],
        n_fft,
        case.get("fmin", 0.0),
        case.get("fmax"),
        case["preemphasis"],
        lifter,
        append_energy,
        WINFUNCS[case["window"]],
    )
    got = audio.mfcc(x, sr, n_mfcc=n_mfcc, lifter=lifter, append_energy=append_energy, **options(case))
    assert got.dtype == np.float32 and got.shape == (len(want), n_mfcc)
    assert_rel(got, want)


def test_reference_defaults_via_logfbank_and_mfcc(psf):
    """Its own defaults (rectangular window, 26 bands, nfft=512, 16 kHz) through its named entry points."""
    x = sweep(16000)
    assert_rel(audio.logmel(x, 16000, n_mels=26, window="rectangular", n_fft=512), psf.logfbank(x, 16000))
    assert_rel(audio.mfcc(x, 16000, window="rectangular", n_fft=512), psf.mfcc(x, 16000))


def test_half_sample_hop_rounds_up_like_reference(psf):
    """At 22.05 kHz a 10 ms hop is 220.5 samples: both round it up to 221."""
    x = noise(22050, 0.5)
    case = dict(sample_rate=22050, n_mels=40, window="hamming", preemphasis=0.97)
    got = audio.logmel(x, 22050)
    assert got.shape == (1 + math.ceil((x.size - 551) / 221), 40)
    assert_rel(got, np.log(reference_fbank(psf, x, case)[0]))


# ----- framing ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,expected", [(1, 1), (399, 1), (400, 1), (401, 2), (560, 2), (561, 3), (16000, 99)])
def test_frame_count_formula(n, expected):
    # 16 kHz: L = 400, H = 160; 1 frame up to L samples, then 1 + ceil((n - L) / H).
    assert audio.frame_count(n, 16000) == expected
    assert audio.logmel(np.ones(n), 16000).shape == (expected, 40)
    assert audio.frames(np.ones(n), 16000).shape == (expected, 400)


@pytest.mark.parametrize(
    "sr,frame_ms,hop_ms,frame_len,hop",
    [
        (16000, 25.0, 10.0, 400, 160),
        (8000, 25.0, 10.0, 200, 80),
        (22050, 25.0, 10.0, 551, 221),
        (11025, 25.0, 10.0, 276, 110),
        (1000, 2.5, 1.5, 3, 2),
        (16000, 0.03125, 0.0625, 1, 1),
    ],
)
def test_frame_and_hop_round_half_up(sr, frame_ms, hop_ms, frame_len, hop):
    x = np.arange(5 * frame_len + 7, dtype=np.float64)
    f = audio.frames(x, sr, frame_ms=frame_ms, hop_ms=hop_ms)
    assert f.shape[1] == frame_len
    assert f[1, 0] == hop
    assert f.shape[0] == audio.frame_count(x.size, sr, frame_ms=frame_ms, hop_ms=hop_ms)


def test_frames_hold_the_samples_and_zero_pad_only_the_last():
    x = np.arange(1, 1001, dtype=np.float64)  # 1000 samples at 16 kHz: 1 + ceil(600 / 160) = 5 frames
    f = audio.frames(x, 16000)
    assert f.dtype == np.float32 and f.shape == (5, 400)
    for t in range(4):
        np.testing.assert_array_equal(f[t], x[t * 160 : t * 160 + 400])
    np.testing.assert_array_equal(f[4, :360], x[640:])
    np.testing.assert_array_equal(f[4, 360:], 0)
    only = audio.frames(x[:100], 16000)
    assert only.shape == (1, 400)
    np.testing.assert_array_equal(only[0, :100], x[:100])
    np.testing.assert_array_equal(only[0, 100:], 0)


def test_preemphasis_and_windows_by_hand():
    x = np.arange(1, 401, dtype=np.float64)
    f = audio.frames(x, 16000, preemphasis=0.5)
    assert f[0, 0] == 1.0  # y[0] = x[0]
    np.testing.assert_allclose(f[0, 1:], x[1:] - 0.5 * x[:-1])
    n = np.arange(400)
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * n / 399)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 399)
    np.testing.assert_allclose(audio.frames(x, 16000, window="hamming")[0], x * hamming, rtol=1e-6)
    np.testing.assert_allclose(audio.frames(x, 16000, window="hann")[0], x * hann, rtol=1e-6, atol=1e-9)


def test_default_n_fft_is_next_power_of_two():
    x = noise(16000, 0.3)
    np.testing.assert_array_equal(audio.logmel(x, 16000), audio.logmel(x, 16000, n_fft=512))
    y = noise(8000, 0.3)
    np.testing.assert_array_equal(audio.logmel(y, 8000, n_mels=26), audio.logmel(y, 8000, n_mels=26, n_fft=256))
    z = noise(22050, 0.3)  # 551-sample frames
    np.testing.assert_array_equal(audio.logmel(z, 22050), audio.logmel(z, 22050, n_fft=1024))


# ----- spectrum, filters, DCT: hand checks --------------------------------------------------------------------
def test_power_spectrum_scale_and_frame_energy():
    """|FFT|^2 / n_fft summed over the one-sided bins: a unit sine on bin 40 of a 400-point FFT, rectangular
    window, gives A^2 L / 4 = 100; a constant 1 gives L^2 / n_fft = 400 (all at DC)."""
    sr, n = 16000, 400 + 160 * 5  # six whole frames, none padded
    t = np.arange(n)
    c0 = audio.mfcc(np.sin(2 * np.pi * 1600 * t / sr), sr, window="rectangular", preemphasis=0.0, n_fft=400)[:, 0]
    np.testing.assert_allclose(c0, math.log(100.0), rtol=1e-6)
    c0 = audio.mfcc(np.ones(n), sr, window="rectangular", preemphasis=0.0, n_fft=400)[:, 0]
    np.testing.assert_allclose(c0, math.log(400.0), rtol=1e-6)


def test_frame_energy_replaces_c0_from_the_frames():
    x = sweep(16000, 0.5)
    f = audio.frames(x, 16000, window="hamming", preemphasis=0.97).astype(np.float64)
    energy = (np.abs(np.fft.rfft(f, 512)) ** 2 / 512).sum(axis=1)
    np.testing.assert_allclose(audio.mfcc(x, 16000)[:, 0], np.log(energy), rtol=1e-5)


def htk_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def htk_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def test_mel_scale_is_htk():
    assert audio.hz_to_mel(700.0) == pytest.approx(2595.0 * math.log10(2.0))
    assert audio.hz_to_mel(1000.0) == pytest.approx(999.9855, abs=1e-3)
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel([0.0, 440.0, 4000.0])), [0.0, 440.0, 4000.0], atol=1e-9)


def test_filter_edges_and_peaks_by_hand():
    sr, n_fft, n_mels = 16000, 512, 10
    bank = audio.mel_filterbank(sr, n_fft, n_mels)
    assert bank.shape == (n_mels, 257)
    top = htk_mel(sr / 2)
    edges = [math.floor((n_fft + 1) * htk_hz(top * i / (n_mels + 1)) / sr) for i in range(n_mels + 2)]
    for j in range(n_mels):
        lo, mid, hi = edges[j : j + 3]
        want = np.zeros(257)
        want[lo:mid] = (np.arange(lo, mid) - lo) / (mid - lo)
        want[mid:hi] = (hi - np.arange(mid, hi)) / (hi - mid)
        np.testing.assert_allclose(bank[j], want, atol=1e-12)
        assert bank[j, mid] == 1.0


@pytest.mark.parametrize("sr", [8000, 16000])
@pytest.mark.parametrize("freq", [150.0, 440.0, 1000.0, 2500.0, 3700.0])
def test_pure_tone_peaks_in_its_band(sr, freq):
    n_mels, frame_len = 26, sr // 40
    n_fft = 1 << (frame_len - 1).bit_length()
    x = np.sin(2 * np.pi * freq * np.arange(sr // 2) / sr)
    band = int(np.argmax(audio.logmel(x, sr, n_mels=n_mels).mean(axis=0)))
    top = htk_mel(sr / 2)
    lo_bin = math.floor((n_fft + 1) * htk_hz(top * band / (n_mels + 1)) / sr)
    hi_bin = math.floor((n_fft + 1) * htk_hz(top * (band + 2) / (n_mels + 1)) / sr)
    assert lo_bin * sr / n_fft <= freq <= hi_bin * sr / n_fft, (band, lo_bin, hi_bin)


def test_tone_on_a_filter_peak_lands_in_that_band():
    sr, n_fft, n_mels = 16000, 512, 26
    top = htk_mel(sr / 2)
    for band in (2, 9, 17, 24):
        peak_bin = math.floor((n_fft + 1) * htk_hz(top * (band + 1) / (n_mels + 1)) / sr)
        x = np.sin(2 * np.pi * (peak_bin * sr / n_fft) * np.arange(8000) / sr)
        assert int(np.argmax(audio.logmel(x, sr, n_mels=n_mels).mean(axis=0))) == band


@pytest.mark.parametrize("n", [1, 2, 13, 26, 40])
def test_dct_is_orthonormal(n):
    c = audio.dct_matrix(n)
    np.testing.assert_allclose(c @ c.T, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(c.T @ c, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(c[0], 1 / math.sqrt(n))
    v = np.random.default_rng(n).standard_normal(n)
    assert np.linalg.norm(c @ v) == pytest.approx(np.linalg.norm(v))


def test_dct_by_hand_and_truncation():
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(audio.dct_matrix(2), [[r, r], [r, -r]], atol=1e-15)
    full = audio.dct_matrix(26)
    np.testing.assert_array_equal(audio.dct_matrix(13, 26), full[:13])
    k, m = 3, 5
    assert full[k, m] == pytest.approx(math.sqrt(2 / 26) * math.cos(math.pi * k * (2 * m + 1) / 52))


def test_mfcc_is_dct_of_logmel_then_lifter():
    x = noise(16000, 0.4)
    plain = audio.mfcc(x, 16000, n_mfcc=13, n_mels=26, lifter=0, append_energy=False).astype(np.float64)
    logs = audio.logmel(x, 16000, n_mels=26).astype(np.float64)
    np.testing.assert_allclose(plain, logs @ audio.dct_matrix(13, 26).T, rtol=1e-4, atol=1e-4)
    liftered = audio.mfcc(x, 16000, lifter=22, append_energy=False).astype(np.float64)
    np.testing.assert_allclose(liftered, plain * (1 + 11 * np.sin(np.pi * np.arange(13) / 22)), rtol=1e-5, atol=1e-5)


def test_silence_is_floored_at_log_eps():
    z = np.zeros(4000)
    np.testing.assert_allclose(audio.logmel(z, 16000), np.float32(LOG_EPS))
    m = audio.mfcc(z, 16000, lifter=0)
    np.testing.assert_allclose(m[:, 0], np.float32(LOG_EPS))  # c0: log(eps) frame energy
    np.testing.assert_allclose(m[:, 1:], 0, atol=1e-5)  # a constant's DCT has only c0


def test_input_kinds_agree():
    pcm = (np.random.default_rng(3).standard_normal(4000) * 3000).astype(np.int16)
    want = audio.logmel(pcm.astype(np.float64), 16000)
    np.testing.assert_array_equal(audio.logmel(pcm, 16000), want)
    np.testing.assert_array_equal(audio.logmel(pcm.tolist(), 16000.0), want)
    np.testing.assert_allclose(audio.logmel(pcm.astype(np.float32), 16000), want, rtol=1e-6)


# ----- lists of signals -----------------------------------------------------------------------------------------
def test_features_on_lists():
    signals = [noise(16000, 0.2, seed=s) for s in range(3)] + [tiny(16000)]
    signals[1] = signals[1][:2345]
    got = audio.features(signals, 16000, kind="mfcc", n_mfcc=20, n_mels=40)
    assert [g.shape for g in got] == [(audio.frame_count(len(s), 16000), 20) for s in signals]
    for g, s in zip(got, signals):
        np.testing.assert_array_equal(g, audio.mfcc(s, 16000, n_mfcc=20, n_mels=40))
    lm = audio.features(signals, 16000)  # kind="logmel" by default
    assert all(g.dtype == np.float32 and g.shape[1] == 40 for g in lm)
    raw = audio.features(signals, 16000, kind="raw")
    for r, s in zip(raw, signals):
        assert r.dtype == np.float32 and r.shape == (len(s), 1)
        np.testing.assert_array_equal(r[:, 0], s.astype(np.float32))
    assert audio.features([], 16000) == []
    assert len(audio.features(np.zeros((2, 500)), 8000, n_mels=20)) == 2  # a 2-d array, row by row


def test_features_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^signals: got one 1-d signal"):
        audio.features(np.zeros(800), 16000)
    with pytest.raises(ValueError, match=r"^signals: got a list of 3 numbers"):
        audio.features([0.0, 1.0, 2.0], 16000)
    with pytest.raises(TypeError, match=r"^signals:"):
        audio.features(42, 16000)
    with pytest.raises(ValueError, match=r"^kind:"):
        audio.features([np.zeros(800)], 16000, kind="spectrogram")
    with pytest.raises(TypeError, match=r"^options: kind='raw'"):
        audio.features([np.zeros(800)], 16000, kind="raw", n_mels=40)
    with pytest.raises(ValueError, match=r"^signals\[1\]: contains 1 NaN"):
        audio.features([np.zeros(800), np.array([0.0, np.nan])], 16000)
    with pytest.raises(ValueError, match=r"^signals\[0\]: got 2-d"):
        audio.features([np.zeros((2, 800))], 16000, kind="raw")
    with pytest.raises(ValueError, match=r"^signals\[0\]: its power spectrum overflows"):
        audio.features([np.full(800, 1e200)], 16000)
    with pytest.raises(ValueError, match=r"^n_mels:"):
        audio.features([np.zeros(800)], 8000, n_mels=200)


# ----- argument errors ------------------------------------------------------------------------------------------
X = np.zeros(1600)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        (dict(signal=np.zeros((2, 800))), ValueError, r"^signal: got 2-d array"),
        (dict(signal=np.array(1.0)), ValueError, r"^signal: got 0-d array"),
        (dict(signal=np.array([0.0, np.nan, 1.0])), ValueError, r"^signal: contains 1 NaN or Inf .* index 1"),
        (dict(signal=np.array([np.inf, 0.0])), ValueError, r"^signal: contains 1 NaN or Inf"),
        (dict(signal=np.zeros(0)), ValueError, r"^signal: got an empty signal"),
        (dict(signal=np.zeros(8, dtype=complex)), TypeError, r"^signal: got dtype complex128"),
        (dict(signal=np.zeros(8, dtype=bool)), TypeError, r"^signal: got dtype bool"),
        (dict(signal=["a", "b"]), TypeError, r"^signal: got dtype"),
        (dict(signal=[[0.0], [1.0, 2.0]]), TypeError, r"^signal: got list that is not array-like"),
        (dict(signal=np.full(800, 1e200)), ValueError, r"^signal: its power spectrum overflows"),
        (dict(sample_rate=0), ValueError, r"^sample_rate: got 0, expected a number > 0"),
        (dict(sample_rate=-16000), ValueError, r"^sample_rate:"),
        (dict(sample_rate=float("nan")), ValueError, r"^sample_rate: got nan, expected a finite"),
        (dict(sample_rate="16000"), TypeError, r"^sample_rate:"),
        (dict(sample_rate=True), TypeError, r"^sample_rate:"),
        (dict(frame_ms=0.0), ValueError, r"^frame_ms: got 0, expected a number > 0"),
        (dict(frame_ms=0.02), ValueError, r"^frame_ms: got 0.02 ms, .* 0.32 samples and rounds to 0"),
        (dict(hop_ms=0.01), ValueError, r"^hop_ms: .* rounds to 0"),
        (dict(hop_ms=-10.0), ValueError, r"^hop_ms:"),
        (dict(n_fft=256), ValueError, r"^n_fft: got 256, shorter than the frame of 400 samples"),
        (dict(n_fft=512.0), TypeError, r"^n_fft: got float"),
        (dict(n_mels=0), ValueError, r"^n_mels: got 0, expected an int >= 1"),
        (dict(n_mels=40.0), TypeError, r"^n_mels: got float"),
        (dict(n_mels=300), ValueError, r"^n_mels: got 300 mel bands, more than the n_fft // 2 \+ 1 = 257"),
        (dict(n_mels=100), ValueError, r"^n_mels: 100 mel bands .* would cover no bin and stay all zero"),
        (dict(window="hanning"), ValueError, r"^window: got 'hanning', expected one of 'hamming', 'hann'"),
        (dict(window=np.hamming), TypeError, r"^window:"),
        (dict(preemphasis=1.5), ValueError, r"^preemphasis: got 1.5, expected a coefficient in \[0, 1\]"),
        (dict(preemphasis=-0.1), ValueError, r"^preemphasis:"),
        (dict(fmin=-1.0), ValueError, r"^fmin: got -1 Hz"),
        (dict(fmin=8000.0), ValueError, r"^fmin:"),
        (dict(fmax=9000.0), ValueError, r"^fmax: got 9000 Hz, expected fmin = 0 < fmax <= sample_rate / 2 = 8000"),
        (dict(fmin=500.0, fmax=400.0), ValueError, r"^fmax:"),
    ],
)
def test_logmel_errors_name_the_argument(kwargs, exc, pattern):
    args = dict(signal=X, sample_rate=16000)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        audio.logmel(args.pop("signal"), args.pop("sample_rate"), **args)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        (dict(n_mfcc=27), ValueError, r"^n_mfcc: got 27, more than n_mels = 26"),
        (dict(n_mfcc=0), ValueError, r"^n_mfcc:"),
        (dict(lifter=-1), ValueError, r"^lifter: got -1, expected a number >= 0"),
        (dict(append_energy="yes"), TypeError, r"^append_energy:"),
        (dict(n_mels=8000), ValueError, r"^n_mels:"),
        (dict(window="blackman"), ValueError, r"^window:"),
    ],
)
def test_mfcc_errors_name_the_argument(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        audio.mfcc(X, 16000, **kwargs)


def test_helper_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^n_samples:"):
        audio.frame_count(0, 16000)
    with pytest.raises(ValueError, match=r"^n_out: got 5, more than n_in = 4"):
        audio.dct_matrix(5, 4)
    with pytest.raises(ValueError, match=r"^n_mels:"):
        audio.mel_filterbank(8000, 256, 60)
    with pytest.raises(ValueError, match=r"^window:"):
        audio.frames(X, 16000, window="triangle")
