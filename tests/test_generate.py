"""LanguageModel.generate: the C++ sampling loop.

Greedy decoding must equal the argmax of the model's own forward logits fed one token at a time in Python.
Sampling is checked on a model whose next-token distribution is known exactly (zero head weights, the head bias
set to chosen log-probabilities): the support under top-k and top-p and the frequencies under temperature over
many draws. With bfloat16 weights, generation must equal float32 generation from a copy of the model whose weight
matrices were rounded to bfloat16 (round to nearest, ties to even) by an independent float64 reference. The loop
releases the GIL, so another Python thread keeps running during a long generation.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import rnnfast as rf

V = 8
# Next-token probabilities of the controlled model, in decreasing order, given to the ids in ORDER.
PROBS = np.array([0.30, 0.22, 0.16, 0.12, 0.09, 0.06, 0.03, 0.02])
ORDER = np.array([5, 2, 7, 0, 3, 6, 1, 4])
DRAWS = 20000


def reference_greedy(model, prompt, n) -> list[int]:
    """Greedy continuation from model.forward with T=1 steps carrying the state."""
    logits, state = model.forward(np.asarray(prompt)[:, None])
    out = []
    for _ in range(n):
        token = int(logits[-1, 0].argmax())
        out.append(token)
        logits, state = model.forward(np.array([[token]]), state)
    return out


def controlled_model(cell: str = "gru") -> rf.LanguageModel:
    """A model whose next-token distribution is PROBS (on ids ORDER) whatever the context."""
    model = rf.LanguageModel(V, 6, 6, num_layers=2, cell=cell, seed=0).eval()
    params = model.named_parameters()
    params["head.weight"][...] = 0.0
    params["head.bias"][ORDER] = np.log(PROBS)
    return model


def frequencies(tokens: np.ndarray) -> np.ndarray:
    return np.bincount(tokens, minlength=V) / len(tokens)


def assert_distribution(tokens: np.ndarray, expected: np.ndarray) -> None:
    """Frequencies within 5 standard errors of ``expected`` (per id), and nothing outside its support."""
    freq = frequencies(tokens)
    assert set(np.flatnonzero(freq)) == set(np.flatnonzero(expected))
    tolerance = 5 * np.sqrt(expected * (1 - expected) / len(tokens)) + 1e-12
    assert (np.abs(freq - expected) <= tolerance).all(), (freq, expected)


def kept(n_top: int) -> np.ndarray:
    """PROBS restricted to the n_top most likely ids and renormalised, indexed by id."""
    out = np.zeros(V)
    out[ORDER[:n_top]] = PROBS[:n_top] / PROBS[:n_top].sum()
    return out


# ----- determinism and greedy decoding ---------------------------------------------------------------------
def test_same_seed_same_tokens_and_different_seeds_differ():
    model = rf.LanguageModel(20, 8, 16, num_layers=2, seed=1).eval()
    first = model.generate([3], 60, seed=42)
    assert first.dtype == np.int64 and first.shape == (60,)
    assert ((first >= 0) & (first < 20)).all()
    np.testing.assert_array_equal(model.generate([3], 60, seed=42), first)
    assert not np.array_equal(model.generate([3], 60, seed=43), first)
    # Without a seed each call draws a fresh one.
    assert not np.array_equal(model.generate([3], 60), model.generate([3], 60))


GREEDY_CASES = [("lstm", 1, False), ("lstm", 2, True), ("gru", 2, False), ("rnn", 2, True)]


@pytest.mark.parametrize(
    "cell, num_layers, tie", GREEDY_CASES, ids=[f"{c}-L{n}-{'tied' if t else 'untied'}" for c, n, t in GREEDY_CASES]
)
def test_temperature_zero_is_the_argmax_of_the_forward_logits(cell, num_layers, tie):
    # Large weights (init_scale 1) give continuations that keep changing instead of settling on one token.
    model = rf.LanguageModel(
        17, 12, 12, num_layers=num_layers, cell=cell, tie_weights=tie, seed=2, dtype="float64", init_scale=1.0
    ).eval()
    prompt = [3, 1, 4, 1, 5]
    expected = reference_greedy(model, prompt, 40)
    assert len(set(expected)) > 1  # a continuation that depends on the state, not one repeated token
    np.testing.assert_array_equal(model.generate(prompt, 40, temperature=0.0), expected)
    np.testing.assert_array_equal(
        model.generate(prompt[:1], 40, temperature=0.0), reference_greedy(model, prompt[:1], 40)
    )


def test_float32_greedy_tokens_are_argmaxes_of_the_forward_logits():
    # float32 kernels may round differently, so each token is checked against teacher-forced logits: it must be
    # the argmax up to a rounding-sized margin.
    model = rf.LanguageModel(30, 16, 32, num_layers=2, cell="lstm", seed=3).eval()
    prompt = np.array([2, 7, 1])
    tokens = model.generate(prompt, 50, temperature=0.0)
    logits, _ = model.forward(np.concatenate([prompt, tokens[:-1]])[:, None])
    step_logits = logits[len(prompt) - 1 :, 0]
    chosen = step_logits[np.arange(50), tokens]
    assert (chosen >= step_logits.max(axis=1) - 1e-4).all()
    assert len(set(tokens.tolist())) > 1


def test_top_k_one_is_greedy():
    model = rf.LanguageModel(17, 12, 12, num_layers=2, cell="gru", seed=4, dtype="float64").eval()
    greedy = model.generate([2, 9], 40, temperature=0.0)
    for seed in (0, 1):
        np.testing.assert_array_equal(model.generate([2, 9], 40, temperature=1.5, top_k=1, seed=seed), greedy)


def test_initial_state_is_used_and_equals_feeding_the_prefix():
    model = rf.LanguageModel(17, 12, 12, num_layers=2, cell="lstm", seed=5, dtype="float64").eval()
    prefix, rest = [4, 8, 15], [16, 2]
    _, state = model.forward(np.array(prefix)[:, None])
    state_copy = tuple(part.copy() for part in state)
    np.testing.assert_array_equal(
        model.generate(rest, 30, temperature=0.0, state=state_copy), model.generate(prefix + rest, 30, temperature=0.0)
    )


def test_generate_leaves_the_callers_state_untouched():
    model = rf.LanguageModel(17, 12, 12, num_layers=2, cell="lstm", seed=5).eval()
    _, state = model.forward(np.array([[4], [8]]))
    saved = tuple(part.copy() for part in state)
    first = model.generate([1], 20, seed=9, state=state)
    for part, before in zip(state, saved):
        np.testing.assert_array_equal(part, before)
    np.testing.assert_array_equal(model.generate([1], 20, seed=9, state=state), first)


def test_zero_new_tokens_gives_an_empty_array():
    out = rf.LanguageModel(5, 4, 4, seed=0).generate([1, 2], 0)
    assert out.shape == (0,) and out.dtype == np.int64


# ----- sampling distribution, top-k, top-p ------------------------------------------------------------------
def test_controlled_model_has_the_intended_distribution():
    model = controlled_model()
    logits, _ = model.forward(np.array([[0], [3], [6]]))
    probs = np.exp(logits[-1, 0]) / np.exp(logits[-1, 0]).sum()
    np.testing.assert_allclose(probs[ORDER], PROBS, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_plain_sampling_follows_the_softmax(cell):
    assert_distribution(controlled_model(cell).generate([0], DRAWS, seed=11), kept(V))


def test_temperature_sharpens_and_flattens():
    model = controlled_model()
    for temperature in (0.5, 2.0):
        expected = np.zeros(V)
        expected[ORDER] = PROBS ** (1 / temperature) / (PROBS ** (1 / temperature)).sum()
        assert_distribution(model.generate([0], DRAWS, temperature=temperature, seed=12), expected)
    assert set(model.generate([0], 200, temperature=0.0).tolist()) == {ORDER[0]}


@pytest.mark.parametrize("top_k", [1, 2, 3, 5, V, V + 10])
def test_top_k_samples_only_the_k_most_likely_in_proportion(top_k):
    assert_distribution(controlled_model().generate([0], DRAWS, top_k=top_k, seed=13), kept(min(top_k, V)))


# Cumulative PROBS: 0.30, 0.52, 0.68, 0.80, 0.89, ...: the nucleus is the shortest prefix reaching top_p.
@pytest.mark.parametrize("top_p, n_top", [(0.2, 1), (0.45, 2), (0.6, 3), (0.75, 4), (1.0, V)])
def test_top_p_samples_only_the_nucleus_in_proportion(top_p, n_top):
    assert_distribution(controlled_model().generate([0], DRAWS, top_p=top_p, seed=14), kept(n_top))


def test_top_p_applies_to_the_top_k_renormalised_mass():
    # top_k=4 keeps mass 0.80; renormalised the cumulative mass is 0.375, 0.65, 0.85, so top_p=0.7 keeps 3 ids
    # (on the unfiltered distribution it would keep 4).
    assert_distribution(controlled_model().generate([0], DRAWS, top_k=4, top_p=0.7, seed=15), kept(3))


def test_top_p_with_temperature_uses_the_tempered_distribution():
    # At temperature 0.5 the probabilities are PROBS^2 renormalised: 0.385, 0.207, 0.110, ... so top_p=0.55
    # keeps 2 ids, where at temperature 1 it would keep 3.
    tempered = PROBS**2 / (PROBS**2).sum()
    assert tempered[0] < 0.55 <= tempered[:2].sum()
    expected = np.zeros(V)
    expected[ORDER[:2]] = tempered[:2] / tempered[:2].sum()
    assert_distribution(controlled_model().generate([0], DRAWS, temperature=0.5, top_p=0.55, seed=16), expected)


# A 1000-word vocabulary whose filtered candidates span several binades of probability, with ties: 4 ids at 0.1,
# 8 at 0.025, 16 at 0.00625, 32 at 0.0015625, and the remaining 0.25 spread evenly over the other 940 ids. Only
# the head of the ranking is sorted, so these check that the head is cut where the filters say.
LARGE_V = 1000
GROUPS = [(4, 0.1), (8, 0.025), (16, 0.00625), (32, 0.0015625)]


def grouped_model() -> tuple[rf.LanguageModel, np.ndarray, np.ndarray]:
    """The model, its ids in ranking order (descending probability, ties by smaller id) and their probabilities."""
    ranked_probs = np.concatenate([np.full(n, p) for n, p in GROUPS])
    ranked_probs = np.concatenate([ranked_probs, np.full(LARGE_V - len(ranked_probs), 0.25 / (LARGE_V - 60))])
    ids = np.random.default_rng(3).permutation(LARGE_V)
    # Within a tie the smaller id ranks first: sort each group's ids.
    start = 0
    for n, _ in GROUPS + [(LARGE_V - 60, None)]:
        ids[start : start + n] = np.sort(ids[start : start + n])
        start += n
    model = rf.LanguageModel(LARGE_V, 6, 6, num_layers=1, cell="gru", seed=0).eval()
    params = model.named_parameters()
    params["head.weight"][...] = 0.0
    params["head.bias"][ids] = np.log(ranked_probs)
    return model, ids, ranked_probs


def assert_large_distribution(tokens: np.ndarray, ids: np.ndarray, ranked_probs: np.ndarray, n_top: int) -> None:
    expected = np.zeros(LARGE_V)
    expected[ids[:n_top]] = ranked_probs[:n_top] / ranked_probs[:n_top].sum()
    freq = np.bincount(tokens, minlength=LARGE_V) / len(tokens)
    assert set(np.flatnonzero(freq)) == set(ids[:n_top])
    tolerance = 5 * np.sqrt(expected * (1 - expected) / len(tokens)) + 1e-12
    assert (np.abs(freq - expected) <= tolerance).all()


# Cumulative mass by rank: 0.1 per id to 0.4 after 4 ids, 0.025 per id to 0.6 after 12, 0.00625 per id to 0.7 after
# 28, then 0.0015625 per id.
@pytest.mark.parametrize("top_p, n_top", [(0.35, 4), (0.54, 10), (0.69, 27), (0.74, 54)])
def test_top_p_over_a_large_vocabulary_keeps_exactly_the_nucleus(top_p, n_top):
    model, ids, ranked_probs = grouped_model()
    tokens = model.generate([0], DRAWS, top_p=top_p, seed=17)
    assert_large_distribution(tokens, ids, ranked_probs, n_top)


@pytest.mark.parametrize("top_k", [3, 20, 50])
def test_top_k_over_a_large_vocabulary_keeps_the_k_best_with_ties_by_id(top_k):
    model, ids, ranked_probs = grouped_model()
    tokens = model.generate([0], DRAWS, top_k=top_k, seed=18)
    assert_large_distribution(tokens, ids, ranked_probs, top_k)


# ----- bfloat16 weights -------------------------------------------------------------------------------------
def bfloat16_rounded(values: np.ndarray) -> np.ndarray:
    """Nearest bfloat16 (8 significant bits), ties to even, computed in float64 from the binary exponent."""
    mantissa, exponent = np.frexp(values.astype(np.float64))  # values = mantissa * 2**exponent, 0.5 <= |m| < 1
    return np.ldexp(np.round(np.ldexp(mantissa, 8)), exponent - 8).astype(np.float32)  # np.round: ties to even


def test_the_bfloat16_reference_rounds_ties_to_even():
    ulp = 2.0**-7  # bfloat16 spacing in [1, 2)
    values = np.array([1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + 2.0**-20, -(1 + 3 * ulp / 2), 0.1], np.float32)
    expected = np.array([1, 1 + 2 * ulp, 1 + ulp, -(1 + 2 * ulp), 0.10009765625], np.float32)
    np.testing.assert_array_equal(bfloat16_rounded(values), expected)


def rounded_weights_copy(model: rf.LanguageModel) -> rf.LanguageModel:
    """The same model with the recurrent and output weight matrices rounded to bfloat16 (biases, embedding kept)."""
    copy = rf.LanguageModel(
        model.vocab_size, model.embed_dim, model.hidden_size, model.num_layers, model.cell, seed=0
    ).eval()
    state = model.state_dict()
    for name, value in state.items():
        if name.startswith("rnn.weight") or name == "head.weight":
            state[name] = bfloat16_rounded(value)
    copy.load_state_dict(state)
    return copy


@pytest.mark.parametrize("cell, num_layers", [("lstm", 2), ("gru", 2), ("rnn", 1)])
def test_bfloat16_weights_generate_what_float32_does_with_rounded_weights(cell, num_layers):
    # Weights of scale 1 make the dynamics chaotic, so any difference in a product would change later tokens.
    # Sizes cover several column panels, a partial last panel, and a k-range longer than one packed slice.
    model = rf.LanguageModel(70, 40, 400, num_layers=num_layers, cell=cell, seed=7, init_scale=1.0).eval()
    params = model.named_parameters()
    ulp = 2.0**-7
    # Exact ties between two bfloat16 values must go to the even one.
    params["rnn.weight_hh_l0"].flat[:4] = [1 + ulp / 2, 1 + 3 * ulp / 2, -(1 + ulp / 2), 0.5 + ulp / 4]
    prompt = [3, 1, 4]
    reference = rounded_weights_copy(model)
    for kwargs in (dict(temperature=0.0), dict(temperature=1.3, seed=5), dict(temperature=0.9, top_k=9, seed=6)):
        tokens = model.generate(prompt, 300, weight_dtype="bfloat16", **kwargs)
        np.testing.assert_array_equal(tokens, reference.generate(prompt, 300, **kwargs))
        assert len(set(tokens.tolist())) > 5
    # The comparison can tell the two precisions apart: full float32 weights take another path.
    assert not np.array_equal(
        model.generate(prompt, 300, temperature=1.3, seed=5),
        model.generate(prompt, 300, temperature=1.3, seed=5, weight_dtype="bfloat16"),
    )


def test_bfloat16_weights_leave_the_model_unchanged():
    model = rf.LanguageModel(20, 8, 16, num_layers=2, seed=1).eval()
    before = {name: value.copy() for name, value in model.state_dict().items()}
    model.generate([1], 30, seed=0, weight_dtype="bfloat16")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_bfloat16_weights_need_a_float32_model():
    model = rf.LanguageModel(V, 6, 6, seed=0, dtype="float64")
    with pytest.raises(ValueError, match="weight_dtype: got 'bfloat16' for a float64 model"):
        model.generate([1], 5, weight_dtype="bfloat16")


# ----- bad arguments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(prompt=[]), ValueError, "prompt: got 0 tokens"),
        (dict(prompt=[V]), ValueError, rf"prompt: got {V}, expected values in 0\.\.{V - 1}"),
        (dict(prompt=[1, -1]), ValueError, "prompt: got -1"),
        (dict(prompt=[1.5]), TypeError, "prompt: got dtype float64"),
        (dict(max_new_tokens=-1), ValueError, "max_new_tokens: got -1"),
        (dict(temperature=-0.5), ValueError, "temperature: got -0.5"),
        (dict(temperature=float("nan")), ValueError, "temperature: got nan"),
        (dict(top_p=0.0), ValueError, "top_p: got 0.0"),
        (dict(top_p=1.5), ValueError, "top_p: got 1.5"),
        (dict(top_k=0), ValueError, "top_k: got 0"),
        (dict(top_k=2.5), TypeError, "top_k: got 2.5"),
        (dict(seed=-3), ValueError, "seed: got -3"),
        (
            dict(weight_dtype="float16"),
            ValueError,
            "weight_dtype: got 'float16', expected one of 'float32', 'bfloat16'",
        ),
        (dict(state=np.zeros((2, 1, 6))), ValueError, "state: got ndarray, expected a tuple"),
        (
            dict(state=(np.zeros((1, 1, 6)), np.zeros((1, 1, 6)))),
            ValueError,
            r"state\[0\] \(h\): got shape \(1, 1, 6\)",
        ),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, message):
    model = rf.LanguageModel(V, 6, 6, num_layers=2, cell="lstm", seed=0)
    args = {"prompt": [1], "max_new_tokens": 5, **kwargs}
    with pytest.raises(error, match=message):
        model.generate(**args)


# ----- GIL ------------------------------------------------------------------------------------------------
def test_another_thread_runs_during_a_long_generation():
    model = rf.LanguageModel(65, 64, 256, num_layers=2, seed=6).eval()
    ticks: list[float] = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    previous_threads = rf.get_num_threads()
    rf.set_num_threads(1)  # leaves a core for the ticker on small machines
    try:
        began = time.perf_counter()
        model.generate([0], 100, seed=0)
        # Enough tokens for about 0.3 s, whatever the speed of the machine.
        n_tokens = int(100 * 0.3 / max(time.perf_counter() - began, 1e-4))
        thread = threading.Thread(target=ticker, daemon=True)
        thread.start()
        while not ticks:
            time.sleep(0.001)
        start = time.perf_counter()
        model.generate([0], n_tokens, seed=0)
        end = time.perf_counter()
    finally:
        stop.set()
        rf.set_num_threads(previous_threads)
    thread.join()
    during = sum(start < t < end for t in ticks)
    # With the GIL held for the whole call the ticker could not append at all until it returned; released, it
    # ticks about once a millisecond. A tenth of that leaves room for a busy machine.
    assert during >= 0.1 * (end - start) / 0.001, (during, end - start)
