"""int8 weights for inference (rnnfast.quantize, cpp/include/rnnfast/int8.hpp).

The integer products of every unit equal an exact int64 reference bit for bit, at the extremes of the ranges
(where VPMADDUBSW would saturate with 8-bit activations) and on odd shapes; the run-time activation quantization
equals an independent numpy one; a quantized linear layer equals its float reference up to float rounding; a
quantized LSTM equals a numpy LSTM built on the same quantized products; quantized models stay within a stated
distance of float32 and generate exactly what their own forward predicts. Quantized models save and load, and
refuse training.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnfast as rf
from rnnfast import _native
from rnnfast.quantize import WEIGHT_MAX, quantize_rows

core = _native.core
UNITS = {"baseline": {"scalar"}, "avx2": {"avx2", "avx_vnni"}, "avx512": {"avx512bw", "avx512_vnni"}}


# ----- references -------------------------------------------------------------------------------------------
def quantize_activations_reference(x: np.ndarray):
    """7-bit symmetric per-row quantization, in float32 as the kernel computes it: q = rint(x * (63 / max|x|))."""
    x = np.asarray(x, np.float32)
    amax = np.abs(x).max(axis=1)
    inverse = np.divide(np.float32(63), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.clip(np.rint(x * inverse[:, None]), -63, 63).astype(np.int8)
    return q, (amax / np.float32(63)).astype(np.float32)


def int8_linear_reference(x, q_w, s_w, b=None):
    """x W^T + b with W = q_w * s_w and x quantized per row; the integer sums exact in int64."""
    q_x, s_x = quantize_activations_reference(x)
    sums = q_x.astype(np.int64) @ q_w.astype(np.int64).T
    y = sums.astype(np.float32) * s_w[None, :] * s_x[:, None]
    return y if b is None else y + b


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def int8_lstm_reference(x, q_ih, s_ih, q_hh, s_hh, b_ih, b_hh):
    """One LSTM layer (T, B, I) -> (T, B, H) in float64 cell math on the int8 products."""
    T, B, _ = x.shape
    H = q_hh.shape[1]
    h = np.zeros((B, H), np.float32)
    c = np.zeros((B, H), np.float64)
    out = []
    for t in range(T):
        pre = (
            int8_linear_reference(x[t], q_ih, s_ih).astype(np.float64)
            + int8_linear_reference(h, q_hh, s_hh)
            + b_ih
            + b_hh
        )
        i, f, g, o = np.split(pre, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = (sigmoid(o) * np.tanh(c)).astype(np.float32)
        out.append(h)
    return np.stack(out)


# ----- the products -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight_max", [WEIGHT_MAX, 128], ids=["narrow weights", "any int8 weights"])
@pytest.mark.parametrize(
    "m,K,n", [(1, 1, 1), (1, 65, 7), (2, 31, 5), (3, 64, 4), (5, 200, 17), (7, 513, 9), (300, 600, 70)]
)
def test_integer_products_equal_the_exact_reference(m, K, n, weight_max):
    """Weights within +-WEIGHT_MAX (what quantize gives) take the kernel that adds two steps in int16; any other
    int8 weights (models saved before) the step-by-step one."""
    rng = np.random.default_rng(m * 1000 + K + n)
    q = rng.integers(-64, 64, (m, K), dtype=np.int8)
    w = rng.integers(-weight_max, weight_max + (weight_max < 128), (n, K), dtype=np.int8)
    expected = q.astype(np.int64) @ w.astype(np.int64).T
    np.testing.assert_array_equal(core.int8_exact_products(q=q, w=w), expected)


@pytest.mark.parametrize("w_value", [127, -128, WEIGHT_MAX, -WEIGHT_MAX, WEIGHT_MAX + 1, -WEIGHT_MAX - 1])
@pytest.mark.parametrize("q_value", [63, -64])
def test_integer_products_do_not_saturate_at_the_extremes(q_value, w_value):
    """Largest activations against the largest weights of either sign. A byte pair sums to +-32512 at |w| = 128,
    where 8-bit activations (255 * 127 * 2) would saturate int16; four products sum to 32512 at |w| = 64, the
    most the two-step kernel takes: at |w| = 65 they would reach 33020, so such weights must not use it."""
    K = 1024
    q = np.full((3, K), q_value, np.int8)
    w = np.full((5, K), w_value, np.int8)
    np.testing.assert_array_equal(core.int8_exact_products(q=q, w=w), np.full((3, 5), q_value * w_value * K))


def test_activation_quantization_equals_the_numpy_reference():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 77)) * np.array([1e-3, 0.5, 1, 3, 100, 1])[:, None]).astype(np.float32)
    x[5] = 0.0
    q, scale = core.int8_quantize_activations(x=x)
    q_ref, scale_ref = quantize_activations_reference(x)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(scale, scale_ref)
    assert scale[5] == 0 and not q[5].any()


def test_non_finite_activations_give_nan_not_finite_nonsense():
    x = np.ones((2, 10), np.float32)
    x[1, 3] = np.nan
    _, scale = core.int8_quantize_activations(x=x)
    assert np.isfinite(scale[0]) and np.isnan(scale[1])


def test_weight_quantization_is_symmetric_per_row():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((9, 40)).astype(np.float32) * np.arange(9)[:, None].astype(np.float32)
    q, scale = quantize_rows(W)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    assert scale[0] == 0 and not q[0].any()
    np.testing.assert_array_equal(np.abs(q[1:]).max(axis=1), WEIGHT_MAX)
    # Each weight is within half a step of its row's scale.
    assert (np.abs(q * scale[:, None] - W) <= scale[:, None] * 0.5 * (1 + 1e-5)).all()


@pytest.mark.parametrize("N,I,O", [(1, 5, 3), (4, 64, 10), (37, 130, 65)])
def test_linear_forward_int8_equals_the_reference(N, I, O):
    rng = np.random.default_rng(N + I + O)
    x = rng.standard_normal((N, I)).astype(np.float32)
    q_w, s_w = quantize_rows(rng.standard_normal((O, I)).astype(np.float32))
    b = rng.standard_normal(O).astype(np.float32)
    y = np.empty((N, O), np.float32)
    core.linear_forward_int8(x=x, W=q_w, W_scale=s_w, b=b, y=y)
    np.testing.assert_allclose(y, int8_linear_reference(x, q_w, s_w, b), rtol=1e-6, atol=1e-6)


def test_int8_unit_matches_the_isa_and_the_cpu():
    info = rf.build_info()
    assert info["int8_unit"] in UNITS[info["isa"]]
    flags = set()
    if Path("/proc/cpuinfo").exists():
        flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    if flags and info["isa"] == "avx512":
        assert (info["int8_unit"] == "avx512_vnni") == ("avx512_vnni" in flags)
    if flags and info["isa"] == "avx2":
        assert (info["int8_unit"] == "avx_vnni") == ("avx_vnni" in flags)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("objdump") is None, reason="needs objdump")
def test_the_vnni_paths_are_compiled_into_the_vector_libraries():
    """This machine may lack VNNI; the instructions must still be in the libraries for the CPUs that have it."""
    directory = Path(core.__file__).parent
    expected = {"avx2": "{vex} vpdpbusd", "avx512": "vpdpbusd %zmm"}
    for isa in set(core.built_isas()) & set(expected):
        disassembly = subprocess.run(
            ["objdump", "-d", str(directory / f"_core_kernels_{isa}.so")], capture_output=True, text=True
        ).stdout
        assert expected[isa] in disassembly, isa


# ----- layers and models ------------------------------------------------------------------------------------
def test_quantized_lstm_equals_the_reference_on_the_same_products():
    lstm = rf.LSTM(12, 16, seed=3).eval()
    x = np.random.default_rng(4).standard_normal((5, 3, 12)).astype(np.float32)
    quantized = lstm.quantize("int8")
    y, _ = quantized(x)
    (q_ih, s_ih), (q_hh, s_hh) = quantized._int8["weight_ih_l0"], quantized._int8["weight_hh_l0"]
    p = lstm.named_parameters()
    expected = int8_lstm_reference(x, q_ih, s_ih, q_hh, s_hh, p["bias_ih_l0"], p["bias_hh_l0"])
    np.testing.assert_allclose(y, expected, atol=2e-5)
    # And near float32: the documented tolerance of int8 inference on a layer like this one.
    np.testing.assert_allclose(y, lstm(x)[0], atol=0.03)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_quantized_language_model_is_close_to_float32_and_greedy_matches_its_forward(cell):
    model = rf.LanguageModel(23, 16, 32, num_layers=2, cell=cell, seed=5).eval()
    quantized = model.quantize("int8")
    assert quantized.weight_dtype == "int8" and not quantized.training
    ids = np.random.default_rng(6).integers(0, 23, (40, 4))
    loss, _ = model.loss(ids[:-1], ids[1:])
    loss_q, _ = quantized.loss(ids[:-1], ids[1:])
    assert abs(loss_q - loss) < 0.01
    prompt = [3, 1, 4]
    tokens = quantized.generate(prompt, 25, temperature=0)
    # The generation loop and the sequence forward use the same int8 products: greedy follows the forward exactly.
    logits, state = quantized.forward(np.asarray(prompt)[:, None])
    for token in tokens:
        assert int(token) == int(logits[-1, 0].argmax())
        logits, state = quantized.forward(np.array([[token]]), state)
    np.testing.assert_array_equal(model.generate(prompt, 25, temperature=0, weight_dtype="int8"), tokens)
    np.testing.assert_array_equal(
        quantized.generate(prompt, 40, seed=9), model.generate(prompt, 40, seed=9, weight_dtype="int8")
    )


def test_tied_weights_quantize_and_the_original_is_unchanged():
    model = rf.LanguageModel(30, 16, 16, tie_weights=True, seed=1).eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    quantized = model.quantize("int8")
    assert "head.weight" in quantized.state_dict() and quantized.state_dict()["head.weight"].dtype == np.int8
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert model.weight_dtype == "float32" and model.generate([1], 5, seed=0).shape == (5,)


def test_sequence_models_quantize_predict_and_stay_close():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 16, 5)).astype(np.float32)
    lengths = rng.integers(3, 10, 16)
    classifier = rf.SequenceClassifier(4, input_size=5, hidden_size=24, bidirectional=True, seed=0)
    tagger = rf.SequenceTagger(3, input_size=5, hidden_size=24, bidirectional=True, crf=True, seed=0)
    forecaster = rf.Forecaster(1, hidden_size=24, horizon=2, seed=0)
    for model in (classifier, tagger):
        q = model.quantize("int8")
        assert q.predict(x, lengths).shape == model.predict(x, lengths).shape
    np.testing.assert_allclose(
        classifier.quantize("int8").predict_proba(x, lengths), classifier.predict_proba(x, lengths), atol=0.02
    )
    series = np.sin(np.arange(60, dtype=np.float32) / 4)
    np.testing.assert_allclose(forecaster.quantize("int8").predict(series), forecaster.predict(series), atol=0.05)


def test_save_and_load_keep_the_int8_tensors(tmp_path):
    model = rf.SequenceTagger(3, input_size=5, hidden_size=8, crf=True, seed=0).quantize("int8")
    path = tmp_path / "tagger.rnnfast"
    rf.save(path, model)
    loaded = rf.load(path).model
    assert loaded.weight_dtype == "int8" and not loaded.training
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for name, value in state.items():
        assert loaded_state[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded_state[name], value)
    assert state["rnn.weight_ih_l0"].dtype == np.int8 and state["rnn.weight_ih_l0.scale"].dtype == np.float32
    x = np.random.default_rng(0).standard_normal((2, 6, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_tampered_int8_state_is_refused():
    model = rf.LSTM(4, 3).quantize("int8")
    state = model.state_dict()
    state["weight_ih_l0"] = state["weight_ih_l0"].astype(np.float32)
    with pytest.raises(ValueError, match="weight_ih_l0 is float32 .*, expected int8"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["weight_hh_l0.scale"] = -state["weight_hh_l0.scale"]
    with pytest.raises(ValueError, match="weight_hh_l0.scale holds a negative"):
        model.load_state_dict(state)


# ----- refusals ---------------------------------------------------------------------------------------------
def test_quantized_models_refuse_training():
    model = rf.LanguageModel(10, 4, 4, seed=0)
    quantized = model.quantize("int8")
    with pytest.raises(RuntimeError, match="train: this model's weights are int8"):
        quantized.train()
    with pytest.raises(RuntimeError, match="backward: this model's weights are int8"):
        quantized.backward()
    with pytest.raises(RuntimeError, match="fit: this model's weights are int8"):
        quantized.fit(np.arange(50) % 10, epochs=1, seq_len=5, batch_size=2)
    with pytest.raises(RuntimeError, match="backward: this model's weights are int8"):
        rf.LSTM(3, 2).quantize("int8").backward(np.zeros((1, 1, 2), np.float32))


def test_bad_quantization_requests_name_the_argument():
    with pytest.raises(ValueError, match="weight_dtype: got 'int4', expected one of 'int8'"):
        rf.LSTM(3, 2).quantize("int4")
    with pytest.raises(ValueError, match="weight_dtype: got 'int8' for a float64 model, expected float32"):
        rf.LSTM(3, 2, dtype="float64").quantize("int8")
    with pytest.raises(ValueError, match="weight_dtype: this model is quantized to int8 already"):
        rf.LSTM(3, 2).quantize("int8").quantize("int8")
    with pytest.raises(ValueError, match="weight_dtype: got 'int8' for a float64 model"):
        rf.LanguageModel(10, 4, 4, dtype="float64").generate([1], 3, weight_dtype="int8")
    with pytest.raises(ValueError, match="weight_dtype: got 'bfloat16' for a model quantized to int8"):
        rf.LanguageModel(10, 4, 4).quantize("int8").generate([1], 3, weight_dtype="bfloat16")


def test_onnx_export_refuses_a_quantized_model(tmp_path):
    with pytest.raises(ValueError, match="model: its weights are int8"):
        rf.onnx.export(rf.LSTM(3, 2).quantize("int8"), tmp_path / "q.onnx")
    assert not list(tmp_path.iterdir())


def test_the_core_refuses_int8_training_and_mismatched_arrays():
    lstm = rf.LSTM(4, 3).quantize("int8")
    (q_ih, s_ih), (q_hh, s_hh) = lstm._int8["weight_ih_l0"], lstm._int8["weight_hh_l0"]
    x = np.zeros((2, 1, 4), np.float32)
    args = dict(cell="lstm", x=x, h0=np.zeros((1, 3), np.float32), c0=np.zeros((1, 3), np.float32))
    args.update(W_ih=q_ih, W_hh=q_hh, b_ih=None, b_hh=None, lengths=None, reverse=False, y=np.zeros((2, 1, 3)))
    args["y"] = args["y"].astype(np.float32)
    with pytest.raises(ValueError, match="training: got True, int8 weights serve inference only"):
        core.sequence_forward(**args, training=True, column=0, W_ih_scale=s_ih, W_hh_scale=s_hh)
    with pytest.raises(ValueError, match="W_hh_scale: got shape"):
        core.sequence_forward(**args, training=False, column=0, W_ih_scale=s_ih, W_hh_scale=s_hh[:2])
    with pytest.raises(ValueError, match="q: got 100, expected activations in"):
        core.int8_exact_products(q=np.full((1, 2), 100, np.int8), w=np.zeros((1, 2), np.int8))
