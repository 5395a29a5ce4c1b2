"""The CRF layer against brute-force enumeration of every tag sequence, float64 central differences, and its
behaviour with padding, threads, long sequences, checkpoints and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rnnfast as rf

T, B, C = 4, 3, 3
LENGTHS = np.array([4, 1, 3])  # full length, a single step and one in between


pytestmark = pytest.mark.usefixtures("one_thread")


def make_case(seed: int, dtype="float64"):
    rng = np.random.default_rng(seed)
    crf = rf.CRF(C, dtype=dtype, seed=seed)
    for value in crf.named_parameters().values():
        value[...] = rng.normal(size=value.shape)
    emissions = rng.normal(size=(T, B, C)).astype(dtype)
    tags = rng.integers(0, C, size=(T, B))
    return crf, emissions, tags


def path_score(crf, emissions, b: int, path) -> float:
    p = {k: v.astype(np.float64) for k, v in crf.named_parameters().items()}
    score = p["start_transitions"][path[0]] + p["end_transitions"][path[-1]]
    score += sum(float(emissions[t, b, y]) for t, y in enumerate(path))
    score += sum(p["transitions"][a, c] for a, c in zip(path[:-1], path[1:]))
    return float(score)


def brute_force(crf, emissions, b: int, length: int):
    """(log Z, best path, best score) by enumerating all C**length tag sequences."""
    paths = list(itertools.product(range(C), repeat=length))
    scores = np.array([path_score(crf, emissions, b, path) for path in paths])
    m = scores.max()
    return m + np.log(np.exp(scores - m).sum()), paths[int(scores.argmax())], m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nll_equals_log_partition_minus_gold_score_by_enumeration(seed):
    crf, emissions, tags = make_case(seed)
    nll = crf.nll(emissions, tags, LENGTHS)
    assert nll.shape == (B,) and nll.dtype == np.float64
    for b, length in enumerate(LENGTHS):
        log_z, _, _ = brute_force(crf, emissions, b, length)
        gold = path_score(crf, emissions, b, tags[:length, b])
        assert nll[b] == pytest.approx(log_z - gold, rel=1e-12, abs=1e-12)


def test_one_step_hand_worked():
    crf = rf.CRF(2, dtype="float64")
    crf.named_parameters()["start_transitions"][...] = [0.5, -1.0]
    crf.named_parameters()["end_transitions"][...] = [0.0, 2.0]
    crf.named_parameters()["transitions"][...] = 7.0  # never used with one step
    emissions = np.array([[[1.0, 0.0]]])
    # scores: tag 0 -> 0.5 + 1 + 0 = 1.5, tag 1 -> -1 + 0 + 2 = 1
    expected = np.log(np.exp(1.5) + np.exp(1.0)) - 1.0
    assert crf.nll(emissions, [[1]])[0] == pytest.approx(expected, rel=1e-14)
    tags, scores = crf.decode(emissions)
    assert tags.tolist() == [[0]] and scores[0] == pytest.approx(1.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_viterbi_finds_the_best_path_by_enumeration(seed):
    crf, emissions, _ = make_case(seed)
    tags, scores = crf.decode(emissions, LENGTHS)
    assert tags.shape == (T, B) and tags.dtype == np.int64
    for b, length in enumerate(LENGTHS):
        _, best, best_score = brute_force(crf, emissions, b, length)
        assert tuple(tags[:length, b]) == best
        assert (tags[length:, b] == -1).all()
        assert scores[b] == pytest.approx(best_score, rel=1e-12)


def test_float32_agrees_with_float64():
    crf64, emissions, tags = make_case(5)
    crf32 = rf.CRF(C, dtype="float32")
    crf32.load_state_dict(crf64.state_dict())
    nll32 = crf32.nll(emissions.astype(np.float32), tags, LENGTHS)
    np.testing.assert_allclose(nll32, crf64.nll(emissions, tags, LENGTHS), rtol=1e-5)
    assert (crf32.decode(emissions.astype(np.float32), LENGTHS)[0] == crf64.decode(emissions, LENGTHS)[0]).all()


def analytic_grads(crf, emissions, tags, lengths):
    crf.train()
    crf.zero_grad()
    loss = crf.loss(emissions, tags, lengths)
    demissions = crf.backward()
    return loss, demissions, {k: v.copy() for k, v in crf.grads.items()}


def test_gradients_match_central_differences():
    crf, emissions, tags = make_case(7)
    loss, demissions, grads = analytic_grads(crf, emissions, tags, LENGTHS)
    assert loss == pytest.approx(crf.nll(emissions, tags, LENGTHS).sum() / LENGTHS.sum(), rel=1e-12)
    eps = 1e-6

    def numeric(array):
        out = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            old = array[idx]
            array[idx] = old + eps
            plus = crf.loss(emissions, tags, LENGTHS)
            array[idx] = old - eps
            minus = crf.loss(emissions, tags, LENGTHS)
            array[idx] = old
            out[idx] = (plus - minus) / (2 * eps)
        return out

    crf.eval()
    np.testing.assert_allclose(demissions, numeric(emissions), rtol=1e-6, atol=1e-9)
    for name, value in crf.named_parameters().items():
        np.testing.assert_allclose(grads[name], numeric(value), rtol=1e-6, atol=1e-9, err_msg=name)


def test_padding_changes_nothing_and_gets_no_gradient():
    crf, emissions, tags = make_case(3)
    other = emissions.copy()
    other_tags = tags.copy()
    for b, length in enumerate(LENGTHS):
        other[length:, b] = 1e3 * np.random.default_rng(b).normal(size=(T - length, C))
        other_tags[length:, b] = -100  # anything at padded positions, even an invalid id
    loss, demissions, grads = analytic_grads(crf, emissions, tags, LENGTHS)
    loss2, demissions2, grads2 = analytic_grads(crf, other, other_tags, LENGTHS)
    assert loss2 == loss
    np.testing.assert_array_equal(demissions2, demissions)
    for name in grads:
        np.testing.assert_array_equal(grads2[name], grads[name])
    for b, length in enumerate(LENGTHS):
        assert (demissions[length:, b] == 0).all()
    assert (crf.decode(other, LENGTHS)[0] == crf.decode(emissions, LENGTHS)[0]).all()


def test_a_sequence_alone_equals_it_inside_a_batch():
    crf, emissions, tags = make_case(4)
    b, length = 2, LENGTHS[2]
    alone = crf.nll(emissions[:length, b : b + 1], tags[:length, b : b + 1])
    assert alone[0] == pytest.approx(crf.nll(emissions, tags, LENGTHS)[b], rel=1e-14)
    assert (crf.decode(emissions[:length, b : b + 1])[0][:, 0] == crf.decode(emissions, LENGTHS)[0][:length, b]).all()


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    crf = rf.CRF(12, seed=0)
    emissions = rng.normal(size=(40, 64, 12)).astype(np.float32)
    tags = rng.integers(0, 12, size=(40, 64))
    lengths = rng.integers(1, 41, size=64)
    results = []
    for threads in (1, 2):
        rf.set_num_threads(threads)
        loss, demissions, grads = analytic_grads(crf, emissions, tags, lengths)
        results.append((loss, demissions, grads, crf.decode(emissions, lengths)[0]))
    (l1, d1, g1, v1), (l2, d2, g2, v2) = results
    assert l1 == l2
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(v1, v2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


def test_long_float32_sequences_stay_finite_and_close_to_float64():
    rng = np.random.default_rng(1)
    crf64 = rf.CRF(5, dtype="float64", seed=1)
    crf32 = rf.CRF(5, dtype="float32")
    crf32.load_state_dict(crf64.state_dict())
    emissions = 5 * rng.normal(size=(3000, 2, 5))
    tags = rng.integers(0, 5, size=(3000, 2))
    nll64 = crf64.nll(emissions, tags)
    nll32 = crf32.nll(emissions.astype(np.float32), tags)
    assert np.isfinite(nll32).all()
    np.testing.assert_allclose(nll32, nll64, rtol=1e-4)


def test_save_and_load_round_trip(tmp_path):
    crf, emissions, tags = make_case(6)
    rf.save(tmp_path / "crf.rnnfast", crf)
    loaded = rf.load(tmp_path / "crf.rnnfast").model
    assert loaded.num_tags == C and loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded.nll(emissions, tags, LENGTHS), crf.nll(emissions, tags, LENGTHS))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda crf, e, t: crf.nll(e, np.full((T, B), C), LENGTHS), r"tags: got 3, expected values in 0\.\.2"),
        (lambda crf, e, t: crf.nll(e, t[:2], LENGTHS), r"tags: got shape \(2, 3\)"),
        (lambda crf, e, t: crf.nll(e, t, [4, 0, 3]), r"lengths: got 0"),
        (lambda crf, e, t: crf.nll(e, t, [4, 5, 3]), r"lengths: got 5"),
        (lambda crf, e, t: crf.nll(e[:, :, :2], t), r"emissions: got shape \(4, 3, 2\), expected \(T, B, 3\)"),
        (lambda crf, e, t: crf.decode(np.full((T, B, C), np.nan)), r"emissions: contains 36 NaN"),
        (lambda crf, e, t: crf.decode(e[:, :, 0]), r"emissions: got 2-d array"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(call, match):
    crf, emissions, tags = make_case(0)
    with pytest.raises(ValueError, match=match):
        call(crf, emissions, tags)


def test_backward_without_a_training_loss_is_an_error():
    crf, emissions, tags = make_case(0)
    with pytest.raises(RuntimeError, match="backward: call loss"):
        crf.backward()
    crf.eval()
    crf.loss(emissions, tags)
    with pytest.raises(RuntimeError, match="backward: call loss"):
        crf.backward()


def test_native_kernel_checks_tags_itself():
    crf, emissions, tags = make_case(0)
    p = crf.named_parameters()
    bad = tags.copy()
    bad[0, 1] = -1
    with pytest.raises(ValueError, match=r"tags: got -1 at \(0, 1\)"):
        rf.core.crf_nll(
            emissions,
            bad,
            None,
            p["start_transitions"],
            p["end_transitions"],
            p["transitions"],
            None,
            None,
            None,
            None,
            1.0,
        )
    with pytest.raises(ValueError, match="expected all four or none"):
        rf.core.crf_nll(
            emissions,
            tags,
            None,
            p["start_transitions"],
            p["end_transitions"],
            p["transitions"],
            np.empty_like(emissions),
            None,
            None,
            None,
            1.0,
        )
