"""The fused softmax cross-entropy, the Embedding/Linear/Dropout layers and the LanguageModel built from them.

References are independent of the kernels: a numpy log-softmax for the loss, central differences in float64
for every gradient (of the whole model loss with respect to every parameter, tied weights and a carried state
included), and plain numpy for the layers' forward passes. Truncated BPTT must be exact forward-wise: a
sequence split in two with the state carried across gives the loss of the unsplit sequence.
"""

from __future__ import annotations

import numpy as np
import pytest
from numeric_checks import central_differences

import rnnfast as rf
from rnnfast.tasks.lm import LanguageModelTask, batchify


def numpy_cross_entropy(logits, targets, ignore_index=-100):
    """Mean negative log-likelihood over rows whose target is not ignore_index, via a stable log-softmax."""
    z = np.asarray(logits, np.float64).reshape(-1, logits.shape[-1])
    t = np.asarray(targets).reshape(-1)
    keep = t != ignore_index
    z, t = z[keep], t[keep]
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(t)), t].mean()), int(keep.sum())


# ----- fused cross-entropy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_cross_entropy_value_count_and_accuracy_match_numpy(dtype, rtol):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((5, 3, 7)) * 3).astype(dtype)
    targets = rng.integers(0, 7, (5, 3))
    loss, count, correct = rf.cross_entropy(logits, targets)
    expected, expected_count = numpy_cross_entropy(logits, targets)
    assert loss == pytest.approx(expected, rel=rtol)
    assert count == expected_count == 15
    assert correct == int((logits.argmax(-1) == targets).sum())


def test_cross_entropy_gradient_by_finite_differences():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 2, 5))
    targets = rng.integers(0, 5, (4, 2))
    targets[1, 0] = -100
    _, _, _, grad = rf.cross_entropy(logits, targets, with_grad=True)
    numeric = central_differences(lambda: numpy_cross_entropy(logits, targets)[0], logits)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_ignored_rows_leave_the_mean_and_get_zero_gradient(ignore_index):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4))
    targets = np.array([1, ignore_index, 3, ignore_index, 2, 1])
    loss, count, correct, grad = rf.cross_entropy(logits, targets, ignore_index=ignore_index, with_grad=True)
    kept = targets != ignore_index
    expected, _ = numpy_cross_entropy(logits[kept], targets[kept])
    assert count == 4
    assert loss == pytest.approx(expected, rel=1e-12)
    assert correct == int((logits[kept].argmax(-1) == targets[kept]).sum())
    assert not grad[~kept].any()
    # The mean is over the kept rows only: their gradient rows are (softmax - onehot) / 4.
    probs = np.exp(logits[kept]) / np.exp(logits[kept]).sum(1, keepdims=True)
    np.testing.assert_allclose(grad[kept], (probs - np.eye(4)[targets[kept]]) / 4, rtol=1e-12, atol=1e-15)


def test_every_row_ignored_counts_nothing_and_gives_no_gradient():
    loss, count, correct, grad = rf.cross_entropy(np.ones((3, 4)), np.full(3, -100), with_grad=True)
    assert np.isnan(loss) and count == 0 and correct == 0
    assert not grad.any()


HUGE_LOGITS = [[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]]
HUGE_TARGETS = [1, 2]
# Row 0: log-sum-exp = 1e4, loss 1e4. Row 1: two equal maxima, loss log 2, softmax (0, 1/2, 1/2).
HUGE_LOSS = (1e4 + np.log(2)) / 2
HUGE_GRAD = np.array([[1.0, -1.0, 0.0], [0.0, 0.5, -0.5]]) / 2  # (softmax - onehot) / 2 rows


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-12), ("float32", 1e-3)])
def test_huge_logits_stay_finite(dtype, atol):
    logits = np.array(HUGE_LOGITS, dtype=dtype)
    loss, _, _, grad = rf.cross_entropy(logits, HUGE_TARGETS, with_grad=True)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(HUGE_LOSS, abs=atol)
    np.testing.assert_allclose(grad, HUGE_GRAD, atol=atol)


def test_huge_logits_keep_float32_accuracy():
    logits = np.array(HUGE_LOGITS, dtype=np.float32)
    loss, _, _, grad = rf.cross_entropy(logits, HUGE_TARGETS, with_grad=True)
    assert loss == pytest.approx(HUGE_LOSS, abs=1e-5)
    np.testing.assert_allclose(grad, HUGE_GRAD, atol=1e-6)


@pytest.mark.parametrize("bad", [5, -1, -7])
def test_target_out_of_range_raises_value_error(bad):
    targets = np.array([0, bad, 2])
    with pytest.raises(ValueError, match=rf"targets: got {bad}.*expected.*0\.\.4"):
        rf.cross_entropy(np.zeros((3, 5)), targets)


def test_cross_entropy_bad_shapes_and_types():
    with pytest.raises(ValueError, match=r"targets: got shape \(2,\), expected \(3,\)"):
        rf.cross_entropy(np.zeros((3, 5)), np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="targets: got dtype float64"):
        rf.cross_entropy(np.zeros((3, 5)), np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match="logits: got shape"):
        rf.cross_entropy(np.zeros((0, 5)), np.zeros(0, np.int64))


# ----- Embedding, Linear, Dropout ---------------------------------------------------------------------------
def test_linear_forward_and_gradients():
    rng = np.random.default_rng(3)
    layer = rf.Linear(4, 3, dtype="float64", seed=0)
    x = rng.standard_normal((2, 5, 4))
    w_out = rng.standard_normal((2, 5, 3))
    W, b = layer.named_parameters()["weight"], layer.named_parameters()["bias"]
    y = layer.forward(x)
    np.testing.assert_allclose(y, x @ W.T + b, rtol=1e-12, atol=1e-15)
    dx = layer.backward(w_out)

    layer.eval()
    objective = lambda: float(np.sum(w_out * layer.forward(x)))  # noqa: E731
    np.testing.assert_allclose(dx, central_differences(objective, x), rtol=1e-7, atol=1e-9)
    for name, value in layer.named_parameters().items():
        np.testing.assert_allclose(
            layer.grads[name], central_differences(objective, value), rtol=1e-7, atol=1e-9, err_msg=name
        )


def test_linear_without_bias_and_bad_input():
    layer = rf.Linear(3, 2, bias=False, seed=0)
    assert list(layer.named_parameters()) == ["weight"]
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(layer(x), x @ layer.named_parameters()["weight"].T, rtol=1e-6)
    with pytest.raises(ValueError, match=r"x: got shape \(4, 2\), expected \(\.\.\., 3\)"):
        layer(np.ones((4, 2)))


@pytest.mark.parametrize("rows", [*range(1, 15), 25, 400])
@pytest.mark.parametrize("cols,depth", [(33, 7), (130, 385), (200, 800), (1000, 64)])
def test_float32_linear_matches_float64_for_every_row_block_and_panel_shape(rows, cols, depth):
    """The packed GEMM handles full and short row blocks (several panels at once for the shortest), partial last
    panels and several k-slices; each must give the float64 product to float32 accuracy."""
    rng = np.random.default_rng(rows * 1000 + cols)
    layer = rf.Linear(depth, cols, seed=0)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    W, b = (v.astype(np.float64) for v in (layer.named_parameters()["weight"], layer.named_parameters()["bias"]))
    expected = x.astype(np.float64) @ W.T + b
    dy = rng.standard_normal((rows, cols)).astype(np.float32)
    scale = np.abs(x).max() * np.abs(W).max() * depth
    np.testing.assert_allclose(layer(x), expected, rtol=0, atol=1e-6 * scale)
    dx = layer.backward(dy)
    np.testing.assert_allclose(
        dx, dy.astype(np.float64) @ W, rtol=0, atol=1e-6 * np.abs(dy).max() * np.abs(W).max() * cols
    )
    np.testing.assert_allclose(
        layer.grads["weight"],
        dy.T.astype(np.float64) @ x,
        rtol=0,
        atol=1e-6 * np.abs(dy).max() * np.abs(x).max() * rows,
    )


def test_embedding_lookup_and_gradient_with_repeated_ids():
    rng = np.random.default_rng(4)
    layer = rf.Embedding(6, 3, dtype="float64", seed=0)
    ids = np.array([[1, 4], [1, 1], [5, 0]])
    w_out = rng.standard_normal((3, 2, 3))
    weight = layer.named_parameters()["weight"]
    np.testing.assert_array_equal(layer.forward(ids), weight[ids])
    layer.backward(w_out)
    expected = np.zeros_like(weight)
    np.add.at(expected, ids, w_out)
    np.testing.assert_allclose(layer.grads["weight"], expected, rtol=1e-14)

    layer.eval()
    numeric = central_differences(lambda: float(np.sum(w_out * layer.forward(ids))), weight)
    np.testing.assert_allclose(layer.grads["weight"], numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    "ids, message",
    [([[0, 6]], r"ids: got 6, expected values in 0\.\.5"), ([[-1]], r"ids: got -1"), ([], "ids: got an empty array")],
)
def test_embedding_rejects_bad_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        rf.Embedding(6, 3)(np.array(ids, np.int64))


def test_dropout_masks_scales_and_backpropagates_through_the_same_mask():
    layer = rf.Dropout(0.3, seed=0)
    x = np.ones((200, 100))
    y = layer.forward(x)
    dropped = y == 0
    assert abs(dropped.mean() - 0.3) < 0.01  # 20,000 draws: the standard error is 0.003
    np.testing.assert_allclose(y[~dropped], 1 / 0.7)
    dy = np.random.default_rng(5).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy * y)
    layer.eval()
    assert layer.forward(x) is x


# ----- LanguageModel gradients ------------------------------------------------------------------------------
V, E, H, T, B = 7, 5, 5, 4, 3
LM_CASES = [("lstm", 1, False), ("lstm", 2, True), ("gru", 2, True), ("gru", 1, False), ("rnn", 2, False)]


def random_state(model, rng):
    shape = (model.num_layers, B, model.hidden_size)
    parts = tuple(rng.uniform(-0.8, 0.8, shape) for _ in range(2 if model.cell == "lstm" else 1))
    return parts if model.cell == "lstm" else parts[0]


@pytest.mark.parametrize(
    "cell, num_layers, tie", LM_CASES, ids=[f"{c}-L{n}-{'tied' if t else 'untied'}" for c, n, t in LM_CASES]
)
def test_language_model_gradient_of_every_parameter_by_finite_differences(cell, num_layers, tie):
    rng = np.random.default_rng(6)
    model = rf.LanguageModel(V, E, H, num_layers=num_layers, cell=cell, tie_weights=tie, seed=1, dtype="float64")
    inputs, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = random_state(model, rng)  # a state carried in from a previous batch

    model.zero_grad()
    model.loss(inputs, targets, state)
    model.backward()
    analytic = {name: g.copy() for name, g in model.grads.items()}
    assert ("head.weight" in analytic) is not tie

    model.eval()
    objective = lambda: model.loss(inputs, targets, state)[0]  # noqa: E731
    for name, value in model.named_parameters().items():
        np.testing.assert_allclose(
            analytic[name], central_differences(objective, value), rtol=1e-5, atol=1e-9, err_msg=name
        )


def test_backward_accumulates_until_zero_grad():
    rng = np.random.default_rng(7)
    model = rf.LanguageModel(V, E, H, cell="gru", seed=2, dtype="float64")
    inputs, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    model.loss(inputs, targets)
    model.backward()
    once = model.parameters().grad.copy()
    model.loss(inputs, targets)
    model.backward()
    np.testing.assert_allclose(model.parameters().grad, 2 * once, rtol=1e-14)
    model.zero_grad()
    assert not model.parameters().grad.any()


def test_backward_needs_a_training_mode_loss():
    model = rf.LanguageModel(V, E, H, seed=0)
    ids = np.zeros((T, B), np.int64)
    with pytest.raises(RuntimeError, match="backward"):
        model.backward()
    model.loss(ids, ids)
    model.backward()
    with pytest.raises(RuntimeError, match="backward"):
        model.backward()
    model.eval()
    model.loss(ids, ids)
    with pytest.raises(RuntimeError, match="backward"):
        model.backward()


def test_tied_head_uses_the_embedding_matrix():
    rng = np.random.default_rng(8)
    model = rf.LanguageModel(V, H, H, cell="lstm", tie_weights=True, seed=3, dtype="float64").eval()
    inputs = rng.integers(0, V, (T, B))
    logits, _ = model.forward(inputs)
    params = model.named_parameters()
    hidden, _ = model.rnn.forward(params["embedding.weight"][inputs])
    np.testing.assert_allclose(logits, hidden @ params["embedding.weight"].T + params["head.bias"], rtol=1e-12)
    with pytest.raises(ValueError, match="tie_weights: requires embed_dim == hidden_size, got 4 and 5"):
        rf.LanguageModel(V, 4, 5, tie_weights=True)


def test_init_scale_draws_every_parameter_uniformly_within_the_scale():
    model = rf.LanguageModel(50, 20, 20, num_layers=2, init_scale=0.05, seed=4)
    values = model.parameters().data
    assert np.abs(values).max() <= 0.05
    # Uniform on [-s, s]: mean 0, variance s^2 / 3 (thousands of draws, so 5% is many standard errors).
    assert abs(values.mean()) < 0.002
    assert values.var() == pytest.approx(0.05**2 / 3, rel=0.05)


def test_dropout_only_in_training_mode():
    rng = np.random.default_rng(9)
    inputs, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    with_dropout = rf.LanguageModel(V, E, H, num_layers=2, dropout=0.5, seed=5, dtype="float64")
    without = rf.LanguageModel(V, E, H, num_layers=2, dropout=0.0, seed=5, dtype="float64")
    without.load_state_dict(with_dropout.state_dict())
    reference = without.eval().loss(inputs, targets)[0]
    assert with_dropout.eval().loss(inputs, targets)[0] == pytest.approx(reference, rel=1e-14)
    with_dropout.train()
    assert with_dropout.loss(inputs, targets)[0] != pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda: (np.full((T, B), V), np.zeros((T, B), np.int64)),
            rf"inputs: got {V}, expected values in 0\.\.{V - 1}",
        ),
        (lambda: (np.zeros((T, B), np.int64), np.full((T, B), -1)), "targets: got -1"),
        (lambda: (np.zeros((T, B), np.int64), np.zeros((T, B + 1), np.int64)), r"targets: got shape \(4, 4\)"),
        (lambda: (np.zeros(T, np.int64), np.zeros(T, np.int64)), r"inputs: got shape \(4,\), expected \(T, B\)"),
    ],
)
def test_language_model_rejects_bad_token_arrays(make_args, message):
    model = rf.LanguageModel(V, E, H, seed=0)
    with pytest.raises(ValueError, match=message):
        model.loss(*make_args())


# ----- truncated BPTT --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_halves_with_carried_state_equal_the_whole_sequence(cell):
    rng = np.random.default_rng(10)
    model = rf.LanguageModel(V, E, H, num_layers=2, cell=cell, seed=6, dtype="float64").eval()
    inputs, targets = rng.integers(0, V, (8, B)), rng.integers(0, V, (8, B))
    whole_loss, whole_state = model.loss(inputs, targets)
    first_loss, carried = model.loss(inputs[:4], targets[:4])
    second_loss, final_state = model.loss(inputs[4:], targets[4:], carried)
    assert (first_loss + second_loss) / 2 == pytest.approx(whole_loss, rel=1e-13)
    for got, expected in zip(np.atleast_1d(final_state), np.atleast_1d(whole_state)):
        np.testing.assert_allclose(got, expected, rtol=1e-13)

    whole_logits, _ = model.forward(inputs)
    first_logits, carried = model.forward(inputs[:4])
    second_logits, _ = model.forward(inputs[4:], carried)
    np.testing.assert_allclose(np.concatenate([first_logits, second_logits]), whole_logits, rtol=1e-13)
    # Without the carried state the second half is a different computation.
    assert model.loss(inputs[4:], targets[4:])[0] != pytest.approx(second_loss, rel=1e-6)


def test_batchify_lays_out_parallel_streams():
    ids = np.arange(23)
    streams = batchify(ids, 4)
    # 23 // 4 = 5 tokens per stream; column b is the b-th contiguous fifth of the corpus, the tail is dropped.
    np.testing.assert_array_equal(streams, np.arange(20).reshape(4, 5).T)
    with pytest.raises(ValueError, match="too few for batch size 4"):
        batchify(np.arange(7), 4)


def test_task_batches_are_consecutive_chunks_with_shifted_targets():
    ids = np.arange(41) % 7
    task = LanguageModelTask(ids, ids, seq_len=3, batch_size=4)
    streams = batchify(ids, 4)
    batches = list(task.train_batches(0, 0))  # n + 1 steps each: inputs are the first n, targets the last n
    assert len(batches) == task.num_train_batches() == 3  # 10 tokens per stream: inputs 0..8 in chunks of 3
    np.testing.assert_array_equal(np.concatenate([b[:-1] for b in batches]), streams[:-1])
    np.testing.assert_array_equal(np.concatenate([b[1:] for b in batches]), streams[1:])
    resumed = list(task.train_batches(0, 2))
    np.testing.assert_array_equal(resumed[0], batches[2])


def test_task_evaluation_carries_state_across_chunks():
    rng = np.random.default_rng(11)
    ids = rng.integers(0, V, 61)
    model = rf.LanguageModel(V, E, H, cell="lstm", seed=7, dtype="float64").eval()
    task = LanguageModelTask(ids, ids, seq_len=4, batch_size=3)
    streams = batchify(ids, 3)
    # One forward over each whole stream is what chunked evaluation with a carried state must reproduce.
    logits, _ = model.forward(streams[:-1])
    expected, _ = numpy_cross_entropy(logits, streams[1:])
    result = task.evaluate(model, "val")
    assert result["loss"] == pytest.approx(expected, rel=1e-12)
    assert result["ppl"] == pytest.approx(np.exp(expected), rel=1e-12)
    assert result["bpc"] == pytest.approx(expected / np.log(2), rel=1e-12)
    assert result["accuracy"] == pytest.approx(float((logits.argmax(-1) == streams[1:]).mean()), rel=1e-12)
