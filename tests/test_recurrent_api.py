"""Behaviour of the recurrent layers' public API: parameters and their loading, initialisation, dropout between
layers, gradient accumulation, train/eval modes, validation of every argument, memory layouts and threads."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

import rnnfast as rf

KINDS = {"rnn": rf.RNN, "lstm": rf.LSTM, "gru": rf.GRU}


def initial_state(layer, B: int, rng: np.random.Generator, scale: float = 0.5):
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    if isinstance(layer, rf.LSTM):
        return tuple((scale * rng.standard_normal(shape)).astype(layer.dtype) for _ in range(2))
    return (scale * rng.standard_normal(shape)).astype(layer.dtype)


def as_list(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def forward_backward(layer, x, state=None, lengths=None, seed: int = 0) -> dict[str, np.ndarray]:
    """Output, final state, dx, dstate0 and parameter gradients for a fixed random linear loss."""
    rng = np.random.default_rng(seed)
    layer.zero_grad()
    y, final = layer.forward(x, state, lengths)
    dstate = [rng.standard_normal(part.shape).astype(layer.dtype) for part in as_list(final)]
    dx, dstate0 = layer.backward(
        rng.standard_normal(y.shape).astype(layer.dtype), tuple(dstate) if isinstance(layer, rf.LSTM) else dstate[0]
    )
    out = {"y": y, "dx": dx}
    out.update({f"final{i}": part for i, part in enumerate(as_list(final))})
    out.update({f"dstate0_{i}": part for i, part in enumerate(as_list(dstate0))})
    out.update({f"grad {name}": g.copy() for name, g in layer.grads.items()})
    return out


def assert_results_close(got: dict, expected: dict, rtol: float) -> None:
    assert got.keys() == expected.keys()
    for name, ref in expected.items():
        scale = max(float(np.abs(ref).max()), 1e-30)
        err = float(np.abs(got[name] - ref).max()) / scale
        assert err <= rtol, f"{name}: relative difference {err:.2e} exceeds {rtol}"


# ----- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_names_and_shapes_match_torch(torch, kind):
    reference = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        5, 7, num_layers=2, bidirectional=True
    )
    layer = KINDS[kind](5, 7, num_layers=2, bidirectional=True)
    expected = [(name, tuple(value.shape)) for name, value in reference.state_dict().items()]
    assert [(name, value.shape) for name, value in layer.state_dict().items()] == expected
    assert [(name, g.shape) for name, g in layer.grads.items()] == expected


def test_load_state_dict_names_every_problem_and_loads_nothing():
    layer = rf.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
    before = layer.state_dict()
    bad = {name: value + 1 for name, value in before.items()}
    del bad["weight_hh_l1"]
    bad["weight_ih_l2"] = np.zeros((16, 8), np.float32)
    bad["bias_ih_l0_reverse"] = np.zeros(15, np.float32)
    with pytest.raises(ValueError) as excinfo:
        layer.load_state_dict(bad)
    message = str(excinfo.value)
    for name in ("weight_hh_l1", "weight_ih_l2", "bias_ih_l0_reverse"):
        assert name in message
    # The valid entries of a rejected dict must not have been copied in.
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_round_trip_reproduces_outputs():
    rng = np.random.default_rng(0)
    source = rf.GRU(3, 5, num_layers=2, seed=1)
    target = rf.GRU(3, 5, num_layers=2, seed=2)
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    assert not np.array_equal(source.forward(x)[0], target.forward(x)[0])
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(target.forward(x)[0], source.forward(x)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_default_init_is_uniform_within_inverse_sqrt_hidden(kind):
    H = 16
    bound = 1 / np.sqrt(H)
    layer = KINDS[kind](5, H, num_layers=2, bidirectional=True, seed=3)
    values = np.concatenate([v.ravel() for v in layer.state_dict().values()])
    assert np.abs(values).max() <= bound
    # A uniform draw over thousands of values reaches close to both ends and centres on 0.
    assert values.max() > 0.95 * bound and values.min() < -0.95 * bound
    assert abs(values.mean()) < 0.05 * bound


@pytest.mark.parametrize("kind", KINDS)
def test_seed_makes_init_reproducible(kind):
    def params(seed):
        return KINDS[kind](4, 6, num_layers=2, bidirectional=True, seed=seed).state_dict()

    first, again, other = params(7), params(7), params(8)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[name], other[name]) for name in first)
    unseeded = [params(None) for _ in range(2)]
    assert any(not np.array_equal(unseeded[0][name], unseeded[1][name]) for name in first)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_sets_parameters_outputs_and_gradients(dtype):
    layer = rf.LSTM(3, 4, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))  # float64 in, whatever the layer's dtype
    results = forward_backward(layer, x)
    assert all(value.dtype == np.dtype(dtype) for value in layer.state_dict().values())
    assert all(value.dtype == np.dtype(dtype) for value in results.values())


# ----- dropout ------------------------------------------------------------------------------------------------

DROPOUT_H, DROPOUT_P = 32, 0.5


def dropout_probe(seed: int, dropout: float = DROPOUT_P):
    """A 2-layer ReLU RNN whose output is the dropout mask times a known positive vector.

    Layer 0 ignores its input and emits the constant ``level``; layer 1 is the identity on its input, so
    y = relu(mask * level) = mask * level, and the mask can be read off as y / level.
    """
    H = DROPOUT_H
    layer = rf.RNN(3, H, num_layers=2, nonlinearity="relu", dropout=dropout, dtype="float64", seed=seed)
    level = 1.0 + np.arange(H) / H
    params = {name: np.zeros_like(value) for name, value in layer.state_dict().items()}
    params["bias_ih_l0"] = level
    params["weight_ih_l1"] = np.eye(H)
    layer.load_state_dict(params)
    return layer, level


def observed_mask(layer, level, x):
    y, _ = layer.forward(x)
    return y / level


DROPOUT_X = np.random.default_rng(0).standard_normal((8, 4, 3))


def test_dropout_masks_between_layers_in_training():
    layer, level = dropout_probe(seed=0)
    mask = observed_mask(layer, level, DROPOUT_X)
    scale = 1 / (1 - DROPOUT_P)
    is_zero, is_kept = np.isclose(mask, 0, atol=1e-12), np.isclose(mask, scale, rtol=1e-12)
    assert (is_zero | is_kept).all(), "dropped units must be 0 and kept ones scaled by 1/(1-p)"
    # 1024 Bernoulli(0.5) draws: the dropped fraction lies within 5 standard deviations (0.078) of p. Dropout
    # applied after the last layer as well would drop 75%.
    assert abs(is_zero.mean() - DROPOUT_P) < 0.08
    assert not np.array_equal(observed_mask(layer, level, DROPOUT_X), mask), "each forward draws a new mask"


def test_dropout_is_off_in_eval_mode():
    layer, level = dropout_probe(seed=0)
    layer.eval()
    np.testing.assert_allclose(observed_mask(layer, level, DROPOUT_X), 1.0, rtol=1e-12)


def test_dropout_mask_follows_the_seed():
    first = observed_mask(*dropout_probe(seed=5), DROPOUT_X)
    again = observed_mask(*dropout_probe(seed=5), DROPOUT_X)
    other = observed_mask(*dropout_probe(seed=6), DROPOUT_X)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_never_touches_the_last_layer_output(kind):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 4))
    with_dropout = KINDS[kind](4, 5, dropout=0.5, dtype="float64", seed=2)
    without = KINDS[kind](4, 5, dtype="float64", seed=2)
    np.testing.assert_array_equal(with_dropout.forward(x)[0], without.forward(x)[0])


def test_dropout_backward_uses_the_forward_mask():
    """Central differences through a dropout layer, with the mask held fixed by rebuilding the layer from its
    seed before every forward (the seed reproduces both the weights and the first mask)."""
    seed, eps = 11, 1e-6
    rng = np.random.default_rng(0)

    def fresh(params=None):
        layer = rf.LSTM(2, 3, num_layers=2, bidirectional=True, dropout=0.4, dtype="float64", seed=seed)
        if params is not None:
            layer.load_state_dict(params)
        return layer

    x = rng.standard_normal((3, 2, 2))
    params = fresh().state_dict()
    eval_layer = fresh().eval()
    w_y = rng.standard_normal((3, 2, 6))
    w_state = tuple(rng.standard_normal((4, 2, 3)) for _ in range(2))

    def loss(x_value, param_values):
        y, (h, c) = fresh(param_values).forward(x_value)
        return float((w_y * y).sum() + (w_state[0] * h).sum() + (w_state[1] * c).sum())

    layer = fresh()
    y, _ = layer.forward(x)
    assert not np.allclose(y, eval_layer.forward(x)[0]), "the mask must change the output for this check to bite"
    dx, _ = layer.backward(w_y, w_state)

    numeric_dx = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric_dx[idx] = (loss(plus, params) - loss(minus, params)) / (2 * eps)
    np.testing.assert_allclose(dx, numeric_dx, rtol=0, atol=1e-6 * np.abs(numeric_dx).max())

    # Layer 1's input weights see the masked input directly.
    name = "weight_ih_l1"
    numeric_w = np.empty_like(params[name])
    for idx in np.ndindex(numeric_w.shape):
        plus = {**params, name: params[name].copy()}
        minus = {**params, name: params[name].copy()}
        plus[name][idx] += eps
        minus[name][idx] -= eps
        numeric_w[idx] = (loss(x, plus) - loss(x, minus)) / (2 * eps)
    np.testing.assert_allclose(layer.grads[name], numeric_w, rtol=0, atol=1e-6 * np.abs(numeric_w).max())


# ----- gradients and modes ------------------------------------------------------------------------------------


def test_gradients_accumulate_until_zero_grad():
    rng = np.random.default_rng(0)
    layer = rf.GRU(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=0)
    x = rng.standard_normal((5, 2, 3))
    dy = rng.standard_normal((5, 2, 8))

    def step():
        layer.forward(x)
        layer.backward(dy)
        return {name: g.copy() for name, g in layer.grads.items()}

    once = step()
    assert all(np.abs(g).max() > 0 for g in once.values())
    twice = step()
    for name in once:
        np.testing.assert_allclose(twice[name], 2 * once[name], rtol=1e-12)
    layer.zero_grad()
    assert all(not g.any() for g in layer.grads.values())
    after_zero = step()
    for name in once:
        np.testing.assert_allclose(after_zero[name], once[name], rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_eval_mode_forward_matches_training_and_refuses_backward(kind):
    rng = np.random.default_rng(0)
    layer = KINDS[kind](4, 6, num_layers=2, bidirectional=True, seed=0)
    x = rng.standard_normal((7, 3, 4)).astype(np.float32)
    state = initial_state(layer, 3, rng)
    lengths = [7, 2, 5]
    y_train, final_train = layer.forward(x, state, lengths)
    layer.eval()
    assert not layer.training
    y_eval, final_eval = layer.forward(x, state, lengths)
    assert_results_close(
        {"y": y_eval, **dict(enumerate(as_list(final_eval)))},
        {"y": y_train, **dict(enumerate(as_list(final_train)))},
        rtol=1e-6,
    )
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.zeros_like(y_eval))
    layer.train()
    layer.forward(x, state, lengths)
    dx, _ = layer.backward(np.ones_like(y_eval))
    assert dx.shape == x.shape


def test_backward_twice_raises():
    layer = rf.LSTM(3, 4, seed=0)
    y, _ = layer.forward(np.ones((2, 1, 3), np.float32))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.ones_like(y))


def test_backward_before_any_forward_raises():
    with pytest.raises(RuntimeError, match="backward"):
        rf.GRU(3, 4).backward(np.ones((2, 1, 4), np.float32))


# ----- bad input ----------------------------------------------------------------------------------------------

T, B, I, H = 5, 3, 4, 6
GOOD_X = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)


def with_value(index, value, array=GOOD_X):
    out = array.copy()
    out[index] = value
    return out


BAD_FORWARD = [
    # (id, kind, forward keyword arguments, exception, argument named in the message)
    ("x-2d", "gru", dict(x=GOOD_X[0]), ValueError, "x"),
    ("x-4d", "gru", dict(x=GOOD_X[None]), ValueError, "x"),
    ("x-input-size", "gru", dict(x=GOOD_X[..., :3]), ValueError, "x"),
    ("x-empty-T", "gru", dict(x=GOOD_X[:0]), ValueError, "x"),
    ("x-empty-B", "gru", dict(x=GOOD_X[:, :0]), ValueError, "x"),
    ("x-complex", "gru", dict(x=GOOD_X.astype(np.complex64)), TypeError, "x"),
    ("x-object", "gru", dict(x=GOOD_X.astype(object)), TypeError, "x"),
    ("x-bool", "gru", dict(x=GOOD_X > 0), TypeError, "x"),
    ("x-strings", "gru", dict(x=GOOD_X.astype(str)), TypeError, "x"),
    ("x-nan", "gru", dict(x=with_value((2, 1, 0), np.nan)), ValueError, "x"),
    ("x-inf", "gru", dict(x=with_value((0, 0, 3), -np.inf)), ValueError, "x"),
    ("lengths-zero", "gru", dict(x=GOOD_X, lengths=[5, 0, 2]), ValueError, "lengths"),
    ("lengths-negative", "gru", dict(x=GOOD_X, lengths=[5, -1, 2]), ValueError, "lengths"),
    ("lengths-above-T", "gru", dict(x=GOOD_X, lengths=[6, 1, 2]), ValueError, "lengths"),
    ("lengths-too-few", "gru", dict(x=GOOD_X, lengths=[5, 2]), ValueError, "lengths"),
    ("lengths-2d", "gru", dict(x=GOOD_X, lengths=[[5, 2, 1]]), ValueError, "lengths"),
    ("lengths-fractional", "gru", dict(x=GOOD_X, lengths=[5.0, 2.5, 1.0]), TypeError, "lengths"),
    ("lengths-nan", "gru", dict(x=GOOD_X, lengths=[5.0, np.nan, 1.0]), TypeError, "lengths"),
    ("state-shape", "gru", dict(x=GOOD_X, state=np.zeros((1, B + 1, H), np.float32)), ValueError, "state"),
    ("state-layers", "gru", dict(x=GOOD_X, state=np.zeros((2, B, H), np.float32)), ValueError, "state"),
    ("state-nan", "gru", dict(x=GOOD_X, state=np.full((1, B, H), np.nan, np.float32)), ValueError, "state"),
    ("state-complex", "gru", dict(x=GOOD_X, state=np.zeros((1, B, H), np.complex64)), TypeError, "state"),
    (
        "state-h-c-pair-for-gru",
        "gru",
        dict(x=GOOD_X, state=(np.zeros((1, B, H), np.float32),) * 2),
        ValueError,
        "state",
    ),
    ("lstm-state-one-array", "lstm", dict(x=GOOD_X, state=np.zeros((1, B, H), np.float32)), ValueError, "state"),
    (
        "lstm-state-three-parts",
        "lstm",
        dict(x=GOOD_X, state=(np.zeros((1, B, H), np.float32),) * 3),
        ValueError,
        "state",
    ),
    (
        "lstm-state-c-shape",
        "lstm",
        dict(x=GOOD_X, state=(np.zeros((1, B, H), np.float32), np.zeros((1, B, H + 1), np.float32))),
        ValueError,
        "state",
    ),
    (
        "lstm-state-c-nan",
        "lstm",
        dict(x=GOOD_X, state=(np.zeros((1, B, H), np.float32), np.full((1, B, H), np.nan, np.float32))),
        ValueError,
        "state",
    ),
]


def assert_names_argument(excinfo, name: str) -> None:
    message = str(excinfo.value)
    assert re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message), f"{message!r} does not name {name!r}"
    assert "expected" in message, f"{message!r} does not say what was expected"


@pytest.mark.parametrize(
    "kind, kwargs, exception, name", [case[1:] for case in BAD_FORWARD], ids=[case[0] for case in BAD_FORWARD]
)
def test_forward_rejects_bad_input(kind, kwargs, exception, name):
    layer = KINDS[kind](I, H, seed=0)
    with pytest.raises(exception) as excinfo:
        layer.forward(**kwargs)
    assert_names_argument(excinfo, name)


BAD_BACKWARD = [
    ("dy-shape", dict(dy=np.zeros((T, B, H + 1), np.float32)), ValueError, "dy"),
    ("dy-transposed", dict(dy=np.zeros((B, T, H), np.float32)), ValueError, "dy"),
    ("dy-nan", dict(dy=np.full((T, B, H), np.nan, np.float32)), ValueError, "dy"),
    ("dy-complex", dict(dy=np.zeros((T, B, H), np.complex64)), TypeError, "dy"),
    (
        "dstate-one-array",
        dict(dy=np.zeros((T, B, H), np.float32), dstate=np.zeros((1, B, H), np.float32)),
        ValueError,
        "dstate",
    ),
    (
        "dstate-shape",
        dict(
            dy=np.zeros((T, B, H), np.float32),
            dstate=(np.zeros((1, B, H), np.float32), np.zeros((1, 1, H), np.float32)),
        ),
        ValueError,
        "dstate",
    ),
]


@pytest.mark.parametrize(
    "kwargs, exception, name", [case[1:] for case in BAD_BACKWARD], ids=[case[0] for case in BAD_BACKWARD]
)
def test_backward_rejects_bad_input_and_stays_usable(kwargs, exception, name):
    layer = rf.LSTM(I, H, seed=0)
    layer.forward(GOOD_X)
    with pytest.raises(exception) as excinfo:
        layer.backward(**kwargs)
    assert_names_argument(excinfo, name)
    dx, _ = layer.backward(np.ones((T, B, H), np.float32))
    assert np.isfinite(dx).all() and dx.shape == GOOD_X.shape


BAD_CONSTRUCTOR = [
    ("input-size-zero", dict(input_size=0), ValueError, "input_size"),
    ("input-size-float", dict(input_size=4.0), TypeError, "input_size"),
    ("hidden-size-negative", dict(hidden_size=-3), ValueError, "hidden_size"),
    ("num-layers-zero", dict(num_layers=0), ValueError, "num_layers"),
    ("num-layers-bool", dict(num_layers=True), TypeError, "num_layers"),
    ("nonlinearity", dict(nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    ("dropout-one", dict(dropout=1.0), ValueError, "dropout"),
    ("dropout-negative", dict(dropout=-0.1), ValueError, "dropout"),
    ("dropout-string", dict(dropout="0.5"), TypeError, "dropout"),
    ("dtype-half", dict(dtype="float16"), ValueError, "dtype"),
    ("dtype-int", dict(dtype="int32"), ValueError, "dtype"),
    ("dtype-unknown", dict(dtype="quad"), TypeError, "dtype"),
    ("seed-negative", dict(seed=-1), ValueError, "seed"),
]


@pytest.mark.parametrize(
    "kwargs, exception, name", [case[1:] for case in BAD_CONSTRUCTOR], ids=[case[0] for case in BAD_CONSTRUCTOR]
)
def test_constructor_rejects_bad_arguments(kwargs, exception, name):
    with pytest.raises(exception) as excinfo:
        rf.RNN(**{"input_size": I, "hidden_size": H, **kwargs})
    assert_names_argument(excinfo, name)


@pytest.mark.parametrize("value, exception", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_set_num_threads_rejects_bad_counts(value, exception):
    before = rf.get_num_threads()
    with pytest.raises(exception) as excinfo:
        rf.set_num_threads(value)
    assert_names_argument(excinfo, "n")
    assert rf.get_num_threads() == before


def test_integer_valued_float_lengths_equal_integer_lengths():
    layer = rf.GRU(I, H, seed=0)
    as_int, _ = layer.forward(GOOD_X, lengths=np.array([5, 2, 1]))
    as_float, _ = layer.forward(GOOD_X, lengths=np.array([5.0, 2.0, 1.0]))
    np.testing.assert_array_equal(as_float, as_int)


# ----- memory layouts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
def test_non_contiguous_inputs_give_contiguous_results(batch_first):
    rng = np.random.default_rng(0)
    layer = rf.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=batch_first, dtype="float64", seed=0)
    wide = rng.standard_normal((T, B, 2 * I))[..., ::2]  # strided last axis
    x = wide.transpose(1, 0, 2) if batch_first else wide
    h0 = rng.standard_normal((B, 4, H)).transpose(1, 0, 2)
    c0 = np.asfortranarray(rng.standard_normal((4, B, H)))
    lengths = np.array([5, 0, 2, 0, 3, 0])[::2]
    assert not (x.flags.c_contiguous or h0.flags.c_contiguous or c0.flags.c_contiguous or lengths.flags.c_contiguous)
    strided = forward_backward(layer, x, (h0, c0), lengths)
    contiguous = forward_backward(
        layer,
        np.ascontiguousarray(x),
        (np.ascontiguousarray(h0), np.ascontiguousarray(c0)),
        np.ascontiguousarray(lengths),
    )
    for name, value in contiguous.items():
        np.testing.assert_array_equal(strided[name], value, err_msg=name)


# ----- threads ------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    before = rf.get_num_threads()
    yield
    rf.set_num_threads(before)


def threaded_case(kind: str, seed: int, dtype: str = "float32"):
    """Big enough that the kernels split the hidden units across two threads."""
    rng = np.random.default_rng(seed)
    layer = KINDS[kind](32, 64, num_layers=2, bidirectional=True, dtype=dtype, seed=seed)
    x = rng.standard_normal((12, 32, 32)).astype(dtype)
    lengths = rng.integers(1, 13, size=32)
    lengths[0] = 12
    return layer, x, initial_state(layer, 32, rng), lengths


# float32: each hidden unit's products and cell math run whole on one thread, in the same order whatever the split,
# so the thread count changes no bit of the forward, the backward or any gradient, including with teams that
# oversubscribe the cores and sleep at the step barrier. float64 (gradient checks, not speed) takes Eigen's
# products, whose sums split with the threads: equal to rounding.
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 0.0)])
@pytest.mark.parametrize("kind", KINDS)
def test_thread_count_does_not_change_results(kind, dtype, rtol, restore_threads):
    layer, x, state, lengths = threaded_case(kind, seed=0, dtype=dtype)
    results = {}
    for threads in (1, 2, 3, 5):
        rf.set_num_threads(threads)
        assert rf.get_num_threads() == threads
        results[threads] = forward_backward(layer, x, state, lengths)
    for threads in (2, 3, 5):
        if rtol:
            assert_results_close(results[threads], results[1], rtol=rtol)
            continue
        assert results[threads].keys() == results[1].keys()
        for name, expected in results[1].items():
            np.testing.assert_array_equal(results[threads][name], expected, err_msg=f"{name}, {threads} threads")


def test_thread_count_does_not_change_generated_tokens(restore_threads):
    # 512 units: enough work per token for the kernel to split it across threads.
    model = rf.LanguageModel(vocab_size=50, embed_dim=32, hidden_size=512, num_layers=2, seed=3)
    tokens = {}
    for threads in (1, 2, 3):
        rf.set_num_threads(threads)
        tokens[threads] = model.generate([1, 2, 3], 200, temperature=1.0, seed=11)
    for threads in (2, 3):
        np.testing.assert_array_equal(tokens[threads], tokens[1], err_msg=f"{threads} threads")


def test_separate_models_in_concurrent_python_threads(restore_threads):
    rf.set_num_threads(2)
    cases = {"lstm": threaded_case("lstm", seed=1), "gru": threaded_case("gru", seed=2)}
    sequential = {kind: forward_backward(*case) for kind, case in cases.items()}

    start = threading.Barrier(len(cases))
    results, errors = {}, []

    def work(kind):
        try:
            start.wait()
            results[kind] = [forward_backward(*cases[kind]) for _ in range(2)]
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(kind,)) for kind in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for kind, runs in results.items():
        for run in runs:
            assert_results_close(run, sequential[kind], rtol=1e-6)
