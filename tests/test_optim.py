"""Optimizers, learning-rate schedules and gradient clipping.

Updates are checked three ways: against numbers worked out by hand for the first steps, against textbook
formulas (Kingma & Ba's Adam, Loshchilov & Hutter's AdamW, heavy-ball SGD) written here in float64 numpy, and
against torch.optim on the same float32 gradient sequence. Optimizer state must survive a checkpoint mid-run
so that the continued run is bit-identical to the uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import rnnfast as rf
from rnnfast.optim import SGD, Adam, AdamW, Cosine, ReduceOnPlateau, StepDecay, clip_factor, grad_norm

P0 = [1.0, -2.0, 0.5]
G1 = [0.5, -1.0, 2.0]
G2 = [1.0, 1.0, -1.0]


def flat_params(values, dtype="float64") -> rf.Parameters:
    """A one-tensor arena holding ``values``; the optimizers accept it like a model's ``parameters()``."""
    data = np.array(values, dtype=dtype)
    return rf.Parameters(data, np.zeros_like(data), ["w"], [data.shape], [0])


def run(optimizer, params: rf.Parameters, grads) -> list[np.ndarray]:
    """Apply one step per gradient; returns the parameters after each step."""
    history = []
    for g in grads:
        params.grad[...] = g
        optimizer.step()
        history.append(params.data.copy())
    return history


# ----- textbook references (float64) -----------------------------------------------------------------------
def reference_sgd(p, grads, lr, momentum=0.0, weight_decay=0.0, dampening=0.0, nesterov=False):
    p, buf, out = np.array(p, np.float64), None, []
    for g in grads:
        d = np.asarray(g, np.float64) + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p)
    return out


def reference_adam(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    p = np.array(p, np.float64)
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


# ----- hand-worked first steps -----------------------------------------------------------------------------
def test_sgd_plain_steps_by_hand():
    params = flat_params(P0)
    got = run(SGD(params, lr=0.1), params, [G1, G2])
    # p1 = p0 - 0.1 g1; p2 = p1 - 0.1 g2
    np.testing.assert_allclose(got[0], [0.95, -1.9, 0.3], rtol=1e-14)
    np.testing.assert_allclose(got[1], [0.85, -2.0, 0.4], rtol=1e-14)


def test_sgd_momentum_and_weight_decay_by_hand():
    params = flat_params(P0)
    got = run(SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1), params, [G1, G2])
    # d1 = g1 + 0.1 p0 = [0.6, -1.2, 2.05] = buf1;          p1 = p0 - 0.1 buf1 = [0.94, -1.88, 0.295]
    # d2 = g2 + 0.1 p1 = [1.094, 0.812, -0.9705];           buf2 = 0.9 buf1 + d2 = [1.634, -0.268, 0.8745]
    # p2 = p1 - 0.1 buf2 = [0.7766, -1.8532, 0.20755]
    np.testing.assert_allclose(got[0], [0.94, -1.88, 0.295], rtol=1e-14)
    np.testing.assert_allclose(got[1], [0.7766, -1.8532, 0.20755], rtol=1e-13)


def test_sgd_nesterov_by_hand():
    params = flat_params(P0)
    got = run(SGD(params, lr=0.1, momentum=0.9, nesterov=True), params, [G1, G2])
    # buf1 = g1; step g1 + 0.9 buf1 = 1.9 g1;          p1 = [0.905, -1.81, 0.12]
    # buf2 = 0.9 g1 + g2 = [1.45, 0.1, 0.8]; step g2 + 0.9 buf2 = [2.305, 1.09, -0.28];  p2 = [0.6745, -1.919, 0.148]
    np.testing.assert_allclose(got[0], [0.905, -1.81, 0.12], rtol=1e-14)
    np.testing.assert_allclose(got[1], [0.6745, -1.919, 0.148], rtol=1e-13)


def test_sgd_dampening_spares_the_first_step_by_hand():
    params = flat_params(P0)
    got = run(SGD(params, lr=0.1, momentum=0.9, dampening=0.5), params, [G1, G2])
    # buf1 = g1 (undamped, as in PyTorch); buf2 = 0.9 g1 + 0.5 g2 = [0.95, -0.4, 1.3]
    np.testing.assert_allclose(got[0], [0.95, -1.9, 0.3], rtol=1e-14)
    np.testing.assert_allclose(got[1], [0.855, -1.86, 0.17], rtol=1e-13)


def test_adam_first_step_moves_each_parameter_by_lr_against_its_gradient_sign():
    # After bias correction m_hat = g and v_hat = g^2, so the first step is lr * g / (|g| + eps).
    params = flat_params(P0)
    got = run(Adam(params, lr=0.1), params, [G1])
    np.testing.assert_allclose(got[0], [0.9, -1.9, 0.4], rtol=1e-8)


def test_adam_second_step_by_hand():
    params = flat_params(P0)
    got = run(Adam(params, lr=0.1), params, [G1, G2])
    # m2 = 0.9 * 0.1 g1 + 0.1 g2 = [0.145, 0.01, 0.08];  m_hat = m2 / (1 - 0.9^2)
    # v2 = 0.999 * 0.001 g1^2 + 0.001 g2^2 = [0.00124975, 0.001999, 0.004996];  v_hat = v2 / (1 - 0.999^2)
    m_hat = np.array([0.145, 0.01, 0.08]) / 0.19
    v_hat = np.array([0.00124975, 0.001999, 0.004996]) / 0.001999
    p1 = np.array(P0) - 0.1 * np.array(G1) / (np.abs(G1) + 1e-8)
    expected = p1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(got[1], expected, rtol=1e-10)


def test_adamw_decays_weights_before_the_adam_step_by_hand():
    params = flat_params(P0)
    got = run(AdamW(params, lr=0.1, weight_decay=0.5), params, [G1])
    # p0 * (1 - 0.1 * 0.5) then the sign step of the first Adam update
    expected = np.array(P0) * 0.95 - 0.1 * np.sign(G1)
    np.testing.assert_allclose(got[0], expected, rtol=1e-8)


def test_adam_weight_decay_is_added_to_the_gradient():
    # With coupled L2 decay a zero gradient still moves the weights: g = 0.5 p, and the first step is the sign step.
    params = flat_params(P0)
    got = run(Adam(params, lr=0.1, weight_decay=0.5), params, [np.zeros(3)])
    np.testing.assert_allclose(got[0], np.array(P0) - 0.1 * np.sign(P0), rtol=1e-8)


GRADS = np.random.default_rng(7).standard_normal((4, 3))

REFERENCE_CASES = [
    (SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.02, dampening=0.1), reference_sgd),
    (SGD, dict(lr=0.05, momentum=0.8, nesterov=True), reference_sgd),
    (Adam, dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05), reference_adam),
    (
        AdamW,
        dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
        lambda p, g, **kw: reference_adam(p, g, decoupled=True, **kw),
    ),
]


@pytest.mark.parametrize("cls, kwargs, reference", REFERENCE_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_several_steps_follow_the_textbook_formulas_in_float64(cls, kwargs, reference):
    params = flat_params(P0)
    got = run(cls(params, **kwargs), params, GRADS)
    for step, (g, r) in enumerate(zip(got, reference(P0, GRADS, **kwargs)), start=1):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


# ----- torch.optim parity ----------------------------------------------------------------------------------
TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("name, kwargs", TORCH_CASES, ids=[f"{n}-{'-'.join(k)}" for n, k in TORCH_CASES])
def test_matches_torch_optim_on_the_same_gradients(torch, name, kwargs):
    rng = np.random.default_rng(3)
    n, steps = 500, 6
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = rng.standard_normal((steps, n)).astype(np.float32) * np.float32(0.5)
    params = flat_params(p0, "float32")
    ours = run(getattr(rf.optim, name)(params, **kwargs), params, grads)

    weight = torch.tensor(p0.copy(), requires_grad=True)
    theirs = getattr(torch.optim, name)([weight], **kwargs)
    for step, g in enumerate(grads):
        weight.grad = torch.from_numpy(g.copy())
        theirs.step()
        # atol on the scale of the parameters (~1): values that pass near 0 differ by float32 rounding only.
        np.testing.assert_allclose(
            ours[step], weight.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=f"step {step + 1}"
        )


# ----- state round trip ------------------------------------------------------------------------------------
OPTIMIZER_CASES = [
    (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (SGD, dict(lr=0.1)),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99))),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("cls, kwargs", OPTIMIZER_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_checkpoint_mid_run_continues_bit_identically(tmp_path, cls, kwargs):
    model = rf.Linear(4, 3, seed=0)
    params = model.parameters()
    rng = np.random.default_rng(1)
    grads = rng.standard_normal((6, params.data.size)).astype(np.float32)
    optimizer = cls(model, **kwargs)
    run(optimizer, params, grads[:3])
    rf.save(tmp_path / "mid.rnnfast", model, optimizer=optimizer)
    uninterrupted = run(optimizer, params, grads[3:])[-1]

    ckpt = rf.load(tmp_path / "mid.rnnfast")
    # Built with another learning rate: the rate and the step count must come from the saved state.
    resumed_optimizer = cls(ckpt.model, **{**kwargs, "lr": 123.0})
    resumed_optimizer.load_state_dict(ckpt.optimizer_state)
    assert resumed_optimizer.step_count == 3
    resumed = run(resumed_optimizer, ckpt.model.parameters(), grads[3:])[-1]
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_sgd_built_without_momentum_restores_a_momentum_state():
    params = flat_params(P0)
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    run(optimizer, params, [G1])
    restored_params = flat_params(params.data)
    restored = SGD(restored_params, lr=0.1)
    restored.load_state_dict(optimizer.state_dict())
    np.testing.assert_array_equal(run(restored, restored_params, [G2])[0], run(optimizer, params, [G2])[0])


def test_state_dict_is_a_snapshot_not_a_view():
    params = flat_params(P0)
    optimizer = Adam(params, lr=0.1)
    run(optimizer, params, [G1])
    state = optimizer.state_dict()
    saved = {k: v.copy() for k, v in state.items() if isinstance(v, np.ndarray)}
    run(optimizer, params, [G2])
    for key, value in saved.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    assert state["step"] == 1


def test_load_state_dict_refuses_another_optimizer_and_wrong_shapes():
    params = flat_params(P0)
    adam_state = Adam(params).state_dict()
    with pytest.raises(ValueError, match=r"state.*'Adam'.*expected 'SGD'"):
        SGD(params, lr=0.1).load_state_dict(adam_state)
    other = flat_params([1.0, 2.0])
    with pytest.raises(ValueError, match=r"exp_avg.*\(3,\).*expected \(2,\)"):
        Adam(other).load_state_dict(adam_state)


# ----- bad arguments and non-finite gradients --------------------------------------------------------------
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda p: SGD(p, lr=-0.1), "lr"),
        (lambda p: SGD(p, lr=0.1, momentum=-1), "momentum"),
        (lambda p: SGD(p, lr=0.1, dampening=2.0), "dampening"),
        (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
        (lambda p: Adam(p, betas=(0.9,)), "betas"),
        (lambda p: Adam(p, betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda p: Adam(p, eps=float("nan")), "eps"),
        (lambda p: AdamW(p, weight_decay=-1e-2), "weight_decay"),
    ],
)
def test_bad_hyper_parameters_raise_value_error_naming_them(make, name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        make(flat_params(P0))


def test_params_that_are_not_parameters_raise_type_error():
    with pytest.raises(TypeError, match=r"params: got ndarray"):
        SGD(np.zeros(3), lr=0.1)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_non_finite_gradient_is_refused_and_leaves_everything_untouched(cls):
    params = flat_params(P0)
    optimizer = cls(params, lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
    run(optimizer, params, [G1])
    before_params, before_state = params.data.copy(), optimizer.state_dict()
    params.grad[...] = [0.1, np.nan, 0.2]
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        optimizer.step()
    np.testing.assert_array_equal(params.data, before_params)
    after_state = optimizer.state_dict()
    for key, value in before_state.items():
        np.testing.assert_array_equal(after_state[key], value, err_msg=key)


@pytest.mark.parametrize("cls, kwargs", OPTIMIZER_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_clipping_inside_the_update_equals_clipping_the_gradients_first(cls, kwargs):
    """step(clip_factor(norm, max_norm)) against clip_grad_norm then step(), bit for bit, on float32 steps where
    the factor clips (norms 4-40 against 3) and where it does not (max_norm 1e9)."""
    rng = np.random.default_rng(5)
    scales = np.geomspace(0.2, 2, 8, dtype=np.float32)[:, None]
    grads = rng.standard_normal((8, 20 * 14 + 14)).astype(np.float32) * scales
    for max_norm in (3.0, 1e9):
        first, fused = (rf.Linear(20, 14, seed=2) for _ in range(2))
        clipped_first, clipped_inside = cls(first, **kwargs), cls(fused, **kwargs)
        for g in grads:
            first.parameters().grad[...] = g
            fused.parameters().grad[...] = g
            rf.clip_grad_norm(first, max_norm)
            clipped_first.step()
            norm = grad_norm(fused)
            clipped_inside.step(clip_factor(norm, max_norm), grad_norm=norm)
            np.testing.assert_array_equal(fused.parameters().grad, g)  # the gradients stay as they were
            np.testing.assert_array_equal(fused.parameters().data, first.parameters().data)
        for key, value in clipped_first.state_dict().items():
            np.testing.assert_array_equal(clipped_inside.state_dict()[key], value, err_msg=key)


def test_a_finite_grad_norm_stands_for_the_check_and_a_non_finite_one_is_checked():
    params = flat_params(P0)
    optimizer = SGD(params, lr=0.1)
    params.grad[...] = G1
    optimizer.step(grad_norm=1.0)  # the caller's norm, not recomputed
    np.testing.assert_allclose(params.data, np.array(P0) - 0.1 * np.array(G1))
    params.grad[...] = [0.1, np.inf, 0.2]
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        optimizer.step(grad_norm=float("nan"))
    with pytest.raises(ValueError, match="grad_scale"):
        optimizer.step(grad_scale=-1.0)


# ----- schedules -------------------------------------------------------------------------------------------
def test_step_decay_follows_zaremba_decay_after_epoch_4():
    schedule = StepDecay(SGD(flat_params(P0), lr=1.0), gamma=0.5, step_size=1, start=4)
    lrs = [schedule.step(epoch) for epoch in range(8)]
    # Zaremba et al. 2014 (max_epoch=4): lr * 0.5 ** max(epoch + 1 - 4, 0) for epochs counted from 0.
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.0625]


def test_step_decay_sets_the_optimizer_lr_and_depends_only_on_the_epoch():
    optimizer = SGD(flat_params(P0), lr=2.0)
    schedule = StepDecay(optimizer, gamma=0.1, step_size=2)
    late = schedule.step(9)
    assert optimizer.lr == late < 2.0 * 0.1**3
    # Setting an earlier epoch again (as a resumed run does) restores that epoch's rate, not a compounded one.
    assert schedule.step(0) == optimizer.lr == 2.0


def test_cosine_endpoints_midpoint_and_torch_sequence(torch):
    base, floor, total = 0.5, 0.01, 10
    optimizer = SGD(flat_params(P0), lr=base)
    schedule = Cosine(optimizer, total_steps=total, min_lr=floor)
    lrs = [schedule.step(t) for t in range(total + 3)]
    assert lrs[0] == pytest.approx(base, rel=1e-12)
    assert lrs[total // 2] == pytest.approx((base + floor) / 2, rel=1e-12)
    assert lrs[total:] == pytest.approx([floor] * 3, rel=1e-12)
    assert optimizer.lr == lrs[-1]

    weight = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.SGD([weight], lr=base)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(torch_optimizer, T_max=total, eta_min=floor)
    expected = []
    for _ in range(total + 1):
        expected.append(torch_optimizer.param_groups[0]["lr"])
        torch_optimizer.step()
        torch_schedule.step()
    np.testing.assert_allclose(lrs[: total + 1], expected, rtol=1e-9)


PLATEAU_LOSSES = [1.0, 0.9, 0.95, 0.92, 0.91, 0.899, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6]


def test_reduce_on_plateau_by_hand():
    # patience 2: the third evaluation in a row without a relative improvement of 1e-4 halves the rate.
    # 0.899 counts as an improvement over 0.9 (0.899 < 0.9 * (1 - 1e-4)).
    schedule = ReduceOnPlateau(SGD(flat_params(P0), lr=1.0), factor=0.5, patience=2, threshold=1e-4)
    lrs = [schedule.step(loss) for loss in PLATEAU_LOSSES]
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125]


def test_reduce_on_plateau_matches_torch_and_respects_min_lr(torch):
    schedule = ReduceOnPlateau(SGD(flat_params(P0), lr=1.0), factor=0.3, patience=1, min_lr=0.05)
    weight = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.SGD([weight], lr=1.0)
    torch_schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch_optimizer, mode="min", factor=0.3, patience=1, min_lr=0.05
    )
    ours, theirs = [], []
    for loss in PLATEAU_LOSSES:
        ours.append(schedule.step(loss))
        torch_schedule.step(loss)
        theirs.append(torch_optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert min(ours) == 0.05


def test_schedule_state_round_trip_continues_identically():
    schedule = ReduceOnPlateau(SGD(flat_params(P0), lr=1.0), factor=0.5, patience=2)
    for loss in PLATEAU_LOSSES[:7]:
        schedule.step(loss)
    restored = ReduceOnPlateau(SGD(flat_params(P0), lr=schedule.optimizer.lr), factor=0.5, patience=2)
    restored.load_state_dict(schedule.state_dict())
    tail = PLATEAU_LOSSES[7:]
    assert [restored.step(loss) for loss in tail] == [schedule.step(loss) for loss in tail]


def test_schedule_needs_an_rnnfast_optimizer():
    with pytest.raises(TypeError, match="optimizer: got"):
        StepDecay(object(), gamma=0.5)
    with pytest.raises(ValueError, match="^gamma: got"):
        StepDecay(SGD(flat_params(P0), lr=1.0), gamma=0.0)


# ----- clipping ----------------------------------------------------------------------------------------------
def model_with_gradients(scale: float, seed: int = 0) -> rf.LanguageModel:
    model = rf.LanguageModel(11, 6, 8, num_layers=2, cell="gru", seed=seed)
    grad = model.parameters().grad
    grad[...] = np.random.default_rng(seed).standard_normal(grad.size) * scale
    return model


def torch_grads(torch, model) -> list:
    tensors = []
    for g in model.grads.values():
        t = torch.zeros(g.shape, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        tensors.append(t)
    return tensors


def test_clip_grad_norm_matches_torch_when_clipping(torch):
    model = model_with_gradients(scale=1.0)
    tensors = torch_grads(torch, model)
    expected_norm = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm=2.0))
    by_hand = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in model.grads.values()))
    assert expected_norm == pytest.approx(by_hand, rel=1e-6) and by_hand > 2.0

    total = rf.clip_grad_norm(model, 2.0)
    assert total == pytest.approx(by_hand, rel=1e-12)
    for (name, g), t in zip(model.grads.items(), tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6, atol=1e-9, err_msg=name)
    clipped = math.sqrt(float(np.sum(model.parameters().grad.astype(np.float64) ** 2)))
    assert clipped == pytest.approx(2.0, rel=1e-5)


def test_clip_grad_norm_below_the_threshold_changes_nothing():
    model = model_with_gradients(scale=1e-3)
    before = model.parameters().grad.copy()
    total = rf.clip_grad_norm(model, 100.0)
    assert total == pytest.approx(float(np.linalg.norm(before.astype(np.float64))), rel=1e-12)
    np.testing.assert_array_equal(model.parameters().grad, before)


def test_clip_grad_value_clamps_each_entry(torch):
    model = model_with_gradients(scale=1.0)
    tensors = torch_grads(torch, model)
    expected = np.clip(model.parameters().grad, -0.5, 0.5)
    assert (np.abs(model.parameters().grad) > 0.5).any() and (np.abs(expected) < 0.5).any()
    rf.clip_grad_value(model, 0.5)
    np.testing.assert_array_equal(model.parameters().grad, expected)
    torch.nn.utils.clip_grad_value_(tensors, 0.5)
    for g, t in zip(model.grads.values(), tensors):
        np.testing.assert_array_equal(g, t.grad.numpy())


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), float("nan")])
def test_clipping_thresholds_must_be_positive_and_finite(value):
    model = model_with_gradients(scale=1.0)
    with pytest.raises(ValueError, match="^max_norm: got"):
        rf.clip_grad_norm(model, value)
    with pytest.raises(ValueError, match="^clip_value: got"):
        rf.clip_grad_value(model, value)
