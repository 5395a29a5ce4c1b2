"""Parity of the float32 recurrent layers with torch.nn.RNN / LSTM / GRU, and of float32 with float64.

Weights are copied from the torch module with ``load_state_dict(module.state_dict())``. Each case compares the
output, the final state, dx, the initial-state gradients and every parameter gradient under the loss
sum(w_y * y) + sum(w_state * final_state), with torch's oneDNN (mkldnn) path both enabled and disabled. Variable
lengths are compared with pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence.
``python tests/test_torch_parity.py`` prints the worst relative error of each case.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import warnings
from typing import NamedTuple

import numpy as np
import pytest

import rnnfast as rf

TOLERANCE = 1e-5
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


class Case(NamedTuple):
    cell: str
    num_layers: int
    bidirectional: bool
    use_lengths: bool
    batch_first: bool
    T: int
    B: int
    I: int
    H: int
    bias: bool = True

    @property
    def id(self) -> str:
        flags = ["bi" if self.bidirectional else "uni", "lengths" if self.use_lengths else "full"]
        flags += ["batch_first"] if self.batch_first else []
        flags += [] if self.bias else ["nobias"]
        return f"{self.cell}-L{self.num_layers}-{'-'.join(flags)}-T{self.T}B{self.B}I{self.I}H{self.H}"


SIZES = ((4, 3, 3, 4), (7, 5, 13, 11))
GRID = [
    Case(cell, layers, bi, use_lengths, batch_first, *size)
    for cell, layers, bi, use_lengths, batch_first, size in itertools.product(
        CELLS, (1, 2), (False, True), (False, True), (False, True), SIZES
    )
]
EDGES = [
    case
    for cell in CELLS
    for case in (
        Case(cell, 2, True, False, False, 1, 5, 13, 11),  # a single step
        Case(cell, 2, True, True, True, 7, 1, 13, 11),  # a single sequence, shorter than T
        Case(cell, 2, True, True, False, 7, 5, 13, 11, bias=False),
        Case(cell, 1, True, False, False, 2000, 1, 3, 5),  # long: errors must not build up
        # Wide enough that the kernels split the hidden units across threads, unevenly.
        Case(cell, 2, True, True, False, 6, 96, 13, 37),
    )
]
CASES = GRID + EDGES


def case_lengths(case: Case, rng: np.random.Generator):
    if not case.use_lengths:
        return None
    lengths = rng.integers(1, case.T + 1, size=case.B)
    lengths[0] = case.T  # one full-length sequence; the rest unequal and as short as one step
    if case.B > 1:
        lengths[-1] = 1
    if case.B == 1:
        lengths[0] = max(1, case.T - 2)
    return lengths


def case_data(case: Case, dtype=np.float32):
    """Input, initial state, lengths and loss weights, in rnnfast's layout (batch axis per batch_first).

    Values are drawn as float32 whatever ``dtype`` is, so float32 and float64 runs see identical numbers.
    """
    rng = np.random.default_rng(list(map(ord, case.id)))

    def draw(shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32).astype(dtype)

    D = 2 if case.bidirectional else 1
    state_shape = (case.num_layers * D, case.B, case.H)
    x_shape = (case.B, case.T, case.I) if case.batch_first else (case.T, case.B, case.I)
    n_state = 2 if case.cell == "lstm" else 1
    x = draw(x_shape)
    state = [draw(state_shape, 0.5) for _ in range(n_state)]
    w_y = draw(x_shape[:2] + (D * case.H,))
    w_state = [draw(state_shape) for _ in range(n_state)]
    return x, state, case_lengths(case, rng), w_y, w_state


def torch_module(torch, case: Case):
    torch.manual_seed(sum(map(ord, case.id)))
    kwargs = dict(
        num_layers=case.num_layers, bias=case.bias, batch_first=case.batch_first, bidirectional=case.bidirectional
    )
    if case.cell.startswith("rnn_"):
        return torch.nn.RNN(case.I, case.H, nonlinearity=case.cell[len("rnn_") :], **kwargs)
    return {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell](case.I, case.H, **kwargs)


def rnnfast_layer(case: Case, dtype: str):
    kwargs = dict(
        num_layers=case.num_layers,
        bias=case.bias,
        batch_first=case.batch_first,
        bidirectional=case.bidirectional,
        dtype=dtype,
    )
    if case.cell.startswith("rnn_"):
        return rf.RNN(case.I, case.H, nonlinearity=case.cell[len("rnn_") :], **kwargs)
    return {"lstm": rf.LSTM, "gru": rf.GRU}[case.cell](case.I, case.H, **kwargs)


def pack(cell: str, parts: list):
    return tuple(parts) if cell == "lstm" else parts[0]


def named_results(y, final, dx, dstate0, grads: dict) -> dict[str, np.ndarray]:
    finals = list(final) if isinstance(final, tuple) else [final]
    starts = list(dstate0) if isinstance(dstate0, tuple) else [dstate0]
    out = {"y": y, "dx": dx}
    out.update(zip(["h_n", "c_n"], finals))
    out.update(zip(["dh0", "dc0"], starts))
    out.update({f"grad {name}": g for name, g in grads.items()})
    return {name: np.asarray(value, dtype=np.float64) for name, value in out.items()}


@contextlib.contextmanager
def mkldnn_flags(torch, enabled: bool):
    # Entering and leaving the context always sets oneDNN's TF32 switch, which warns on builds without Intel
    # GPU support; the warning says nothing about the CPU path under test.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN", category=UserWarning)
        with torch.backends.mkldnn.flags(enabled=enabled):
            yield


def run_torch(torch, module, case: Case, data, mkldnn: bool) -> dict[str, np.ndarray]:
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    x, state, lengths, w_y, w_state = data
    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(part, requires_grad=True) for part in state]
    module.zero_grad()
    with mkldnn_flags(torch, mkldnn):
        if lengths is None:
            y_t, final_t = module(x_t, pack(case.cell, state_t))
        else:
            packed = pack_padded_sequence(
                x_t, torch.tensor(lengths), batch_first=case.batch_first, enforce_sorted=False
            )
            out, final_t = module(packed, pack(case.cell, state_t))
            y_t, _ = pad_packed_sequence(out, batch_first=case.batch_first, total_length=case.T)
        finals_t = list(final_t) if isinstance(final_t, tuple) else [final_t]
        loss = (y_t * torch.tensor(w_y)).sum()
        for part, w in zip(finals_t, w_state):
            loss = loss + (part * torch.tensor(w)).sum()
        loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    starts = [part.grad.numpy() for part in state_t]
    finals = [part.detach().numpy() for part in finals_t]
    return named_results(
        y_t.detach().numpy(), pack(case.cell, finals), x_t.grad.numpy(), pack(case.cell, starts), grads
    )


def run_rnnfast(layer, case: Case, data) -> dict[str, np.ndarray]:
    x, state, lengths, w_y, w_state = data
    layer.zero_grad()
    y, final = layer.forward(x, pack(case.cell, state), lengths)
    dx, dstate0 = layer.backward(w_y, pack(case.cell, w_state))
    return named_results(y, final, dx, dstate0, layer.grads)


def relative_errors(result: dict, reference: dict) -> dict[str, float]:
    """Worst absolute difference of each array relative to the largest absolute reference value in it."""
    assert result.keys() == reference.keys(), f"got {sorted(result)}, expected {sorted(reference)}"
    errors = {}
    for name, ref in reference.items():
        assert result[name].shape == ref.shape, f"{name}: shape {result[name].shape}, expected {ref.shape}"
        errors[name] = float(np.abs(result[name] - ref).max()) / max(float(np.abs(ref).max()), 1e-30)
    return errors


def torch_parity_errors(torch, case: Case, mkldnn: bool) -> dict[str, float]:
    module = torch_module(torch, case)
    layer = rnnfast_layer(case, "float32")
    layer.load_state_dict(module.state_dict())
    data = case_data(case)
    return relative_errors(run_rnnfast(layer, case, data), run_torch(torch, module, case, data, mkldnn))


def precision_errors(case: Case) -> dict[str, float]:
    """float32 against float64 on the same weights and inputs (the float64 run is the reference)."""
    layer32 = rnnfast_layer(case, "float32")
    layer64 = rnnfast_layer(case, "float64")
    layer64.load_state_dict(layer32.state_dict())
    return relative_errors(
        run_rnnfast(layer32, case, case_data(case, np.float32)), run_rnnfast(layer64, case, case_data(case, np.float64))
    )


def worst(errors: dict[str, float]) -> tuple[str, float]:
    name = max(errors, key=errors.get)
    return name, errors[name]


def assert_within(errors: dict[str, float], label: str) -> None:
    name, err = worst(errors)
    print(f"{label}: worst relative error {err:.2e} ({name})")
    bad = {n: f"{e:.2e}" for n, e in errors.items() if e > TOLERANCE}
    assert not bad, f"{label}: off by more than {TOLERANCE} relative: {bad}"


@contextlib.contextmanager
def torch_on_one_thread(torch):
    """torch on one thread, rnnfast on as many as before.

    The sizes here are far too small for torch's intra-op threads to help; on a shared machine they only
    oversubscribe the cores and make the long-sequence cases crawl. torch and rnnfast share the OpenMP runtime's
    thread-count setting, so rnnfast's own count is pinned first (it then ignores that setting), or the
    multi-threaded cases would silently run on one thread.
    """
    torch_before, rnnfast_before = torch.get_num_threads(), rf.get_num_threads()
    rf.set_num_threads(rnnfast_before)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        rf.set_num_threads(rnnfast_before)


@pytest.fixture
def torch_one_thread(torch):
    with torch_on_one_thread(torch):
        yield torch


@pytest.mark.parametrize("mkldnn", [True, False], ids=["mkldnn", "no-mkldnn"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_torch(torch_one_thread, case, mkldnn):
    assert_within(torch_parity_errors(torch_one_thread, case, mkldnn), f"{case.id} mkldnn={mkldnn}")


PRECISION_CASES = [
    Case(cell, 2, True, use_lengths, False, 7, 5, 13, 11) for cell in CELLS for use_lengths in (False, True)
]


@pytest.mark.parametrize("case", PRECISION_CASES, ids=[c.id for c in PRECISION_CASES])
def test_float32_matches_float64(case):
    assert_within(precision_errors(case), f"{case.id} float32 vs float64")


def main() -> int:
    import torch

    worst_overall = 0.0
    print(f"{'case':<58} {'reference':<13} {'worst rel. error':>16}  array")
    rows = [
        (case, f"torch mkldnn={mkldnn}", lambda c=case, m=mkldnn: torch_parity_errors(torch, c, m))
        for case in CASES
        for mkldnn in (True, False)
    ]
    rows += [(case, "float64", lambda c=case: precision_errors(c)) for case in PRECISION_CASES]
    for case, reference, compute in rows:
        with torch_on_one_thread(torch):
            name, err = worst(compute())
        worst_overall = max(worst_overall, err)
        print(f"{case.id:<58} {reference:<13} {err:>16.2e}  {name}")
    print(f"{'all cases':<58} {'':<13} {worst_overall:>16.2e}  (tolerance {TOLERANCE:.0e})")
    return 0 if worst_overall <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
