"""set_matmul_precision("bfloat16"): every float32 product rounds its operands to bfloat16 and sums in float32.

References are independent of the kernels: float64 products of operands rounded by a float64 bfloat16 rounding
(tests/test_generate.py checks it against hand-worked ties), and, for whole layers forward and backward, PyTorch
autograd in float64 with a matrix product that rounds its operands the same way in both directions. A layer's
bfloat16 result must be far closer to that reference than to the exact one: a value computed in float32 that lies
within its rounding error of a bfloat16 boundary (h, or a gate's gradient) can round to the neighbouring bfloat16,
so equality is not expected.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_generate import bfloat16_rounded

import rnnfast as rf
from rnnfast._native import core

BF16_UNIT = core.build_info()["bf16_products"]
needs_bf16_unit = pytest.mark.skipif(not BF16_UNIT, reason="this CPU or module has neither AMX-BF16 nor AVX512-BF16")


@pytest.fixture
def bfloat16_products():
    rf.set_matmul_precision("bfloat16")
    yield
    rf.set_matmul_precision("float32")


def rounded64(values: np.ndarray) -> np.ndarray:
    return bfloat16_rounded(values).astype(np.float64)


# Shapes (N, I, O) that cover the kernels' edges: rows not a multiple of 16 or 32, columns not a multiple of 16,
# k not a multiple of 32, k and columns longer than one 512 block, one row, one k, and both thread splits.
LINEAR_SHAPES = [
    (37, 45, 29),
    (5, 17, 3),
    (1, 300, 40),
    (100, 1, 7),
    (64, 256, 1024),
    (700, 600, 33),
    (33, 1100, 530),
    (400, 200, 1000),
]


@needs_bf16_unit
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_products_equal_float64_products_of_rounded_operands(shape, bfloat16_products):
    N, I, O = shape
    rng = np.random.default_rng(N * 7 + I)
    x, W = rng.standard_normal((N, I), dtype=np.float32), rng.standard_normal((O, I), dtype=np.float32)
    dy = rng.standard_normal((N, O), dtype=np.float32)
    y, dx, dW = np.empty((N, O), np.float32), np.empty((N, I), np.float32), np.zeros((O, I), np.float32)
    core.linear_forward(x, W, None, y)
    core.linear_backward(dy, x, W, dx, dW, None)
    for got, want in (
        (y, rounded64(x) @ rounded64(W).T),
        (dx, rounded64(dy) @ rounded64(W)),
        (dW, rounded64(dy).T @ rounded64(x)),
    ):
        scale = np.abs(want).max()
        # float32 sums of products that are exact in float32: a few float32 ulps of the largest value
        assert np.abs(got - want).max() <= 1e-6 * scale
    exact = x.astype(np.float64) @ W.astype(np.float64).T
    if I > 1:
        assert np.abs(y - exact).max() > 100 * 1e-6 * np.abs(exact).max()  # the products really were rounded


@needs_bf16_unit
def test_accumulating_products_add_to_what_is_there(bfloat16_products):
    rng = np.random.default_rng(3)
    dy, x = rng.standard_normal((50, 70), dtype=np.float32), rng.standard_normal((50, 20), dtype=np.float32)
    start = rng.standard_normal((70, 20), dtype=np.float32)
    dW = start.copy()
    core.linear_backward(dy, x, np.zeros((70, 20), np.float32), None, dW, None)
    want = start + rounded64(dy).T @ rounded64(x)
    assert np.abs(dW - want).max() <= 1e-6 * np.abs(want).max()


def reference_layer(torch, cell: str, params: dict, x: np.ndarray, h0: np.ndarray, c0, rounded: bool):
    """Output, final state and gradients of sum(y * w_y) from a float64 PyTorch layer (PyTorch's gate order and
    equations), every product rounding its operands to bfloat16 forward and backward when `rounded`."""

    def rd(t):
        return torch.from_numpy(rounded64(t.detach().numpy())) if rounded else t

    class Product(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):  # a (m, k) @ b.T, b (n, k)
            ctx.save_for_backward(a, b)
            return rd(a) @ rd(b).T

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return rd(g) @ rd(b), rd(g).T @ rd(a)

    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    xs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    h = torch.tensor(h0, dtype=torch.float64)
    c = torch.tensor(c0, dtype=torch.float64) if c0 is not None else None
    H = h.shape[1]
    ys = []
    for t in range(x.shape[0]):
        gi = Product.apply(xs[t], p["weight_ih_l0"]) + p["bias_ih_l0"]
        gh = Product.apply(h, p["weight_hh_l0"]) + p["bias_hh_l0"]
        if cell == "lstm":
            g = gi + gh
            i, f, n, o = (g[:, k * H : (k + 1) * H] for k in range(4))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(n)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            r = torch.sigmoid(gi[:, :H] + gh[:, :H])
            z = torch.sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
            n = torch.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
            h = (1 - z) * n + z * h
        ys.append(h)
    y = torch.stack(ys)
    w_y = torch.from_numpy(np.random.default_rng(9).standard_normal(y.shape))
    (y * w_y).sum().backward()
    grads = {k: v.grad.numpy() for k, v in p.items()}
    grads["x"] = xs.grad.numpy()
    return y.detach().numpy(), grads, w_y.numpy()


@needs_bf16_unit
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("batch", [3, 40])  # few rows (one tile, staged edges) and more than one row block
def test_layer_forward_and_backward_follow_rounded_products(torch, cell, batch, bfloat16_products):
    T, I, H = 6, 37, 24
    layer = (rf.LSTM if cell == "lstm" else rf.GRU)(I, H, seed=5)
    params = {k: v.copy() for k, v in layer.state_dict().items()}
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((T, batch, I), dtype=np.float32)
    h0 = 0.5 * rng.standard_normal((1, batch, H), dtype=np.float32)
    c0 = 0.5 * rng.standard_normal((1, batch, H), dtype=np.float32) if cell == "lstm" else None
    state = (h0, c0) if cell == "lstm" else h0
    y, _ = layer.forward(x, state)
    want, want_grads, w_y = reference_layer(torch, cell, params, x, h0[0], None if c0 is None else c0[0], True)
    exact, exact_grads, _ = reference_layer(torch, cell, params, x, h0[0], None if c0 is None else c0[0], False)
    layer.zero_grad()
    dx, _ = layer.backward(w_y.astype(np.float32))
    got_grads = dict(layer.grads)
    got_grads["x"] = dx
    pairs = [(y, want, exact)] + [(got_grads[k], want_grads[k], exact_grads[k]) for k in want_grads]
    for got, rounded_ref, exact_ref in pairs:
        rounding_effect = np.abs(rounded_ref - exact_ref).max()
        assert rounding_effect > 0
        # float32 products sit at 1.0 here; a few roundings that flip (of h, or of a gate gradient) stay far below
        assert np.abs(got - rounded_ref).max() <= 0.2 * rounding_effect


@needs_bf16_unit
def test_long_sequence_projection_follows_rounded_products(bfloat16_products):
    """The input projection of a whole sequence converts its rows to bfloat16 a few thousand at a time: 4,500
    tokens of 37 inputs span three such chunks, each of which must land on its own rows."""
    T, B, I, H = 3, 1500, 37, 16
    layer = rf.RNN(I, H, seed=6)  # training mode: the whole sequence is projected at once
    x = np.random.default_rng(7).standard_normal((T, B, I), dtype=np.float32)
    y, _ = layer.forward(x)
    p = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}

    def reference(rd):
        h, ys = np.zeros((B, H)), []
        for t in range(T):
            h = np.tanh(
                rd(x[t]) @ rd(p["weight_ih_l0"]).T + p["bias_ih_l0"] + rd(h) @ rd(p["weight_hh_l0"]).T + p["bias_hh_l0"]
            )
            ys.append(h)
        return np.stack(ys)

    rounded_ref, exact_ref = reference(rounded64), reference(lambda a: np.asarray(a, np.float64))
    rounding_effect = np.abs(rounded_ref - exact_ref).max()
    assert rounding_effect > 0
    assert np.abs(y - rounded_ref).max() <= 0.2 * rounding_effect


@needs_bf16_unit
def test_language_model_trains_under_bfloat16_products(bfloat16_products):
    """A small character model learns a repeating text about as well in bfloat16 products as in float32."""
    text = np.array([ord(ch) % 16 for ch in "the quick brown fox jumps over the lazy dog. " * 30])
    xs = text[:-1][: 40 * 8].reshape(8, 40).T.copy()
    ys = text[1:][: 40 * 8].reshape(8, 40).T.copy()

    def train(precision):
        rf.set_matmul_precision(precision)
        model = rf.LanguageModel(16, 16, 32, 1, seed=1)
        opt = rf.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            model.zero_grad()
            loss, _ = model.loss(xs, ys)
            model.backward()
            opt.step()
        return float(loss)

    start = float(np.log(16))
    fp32, bf16 = train("float32"), train("bfloat16")
    assert fp32 < 0.5 * start and bf16 < 0.5 * start
    assert abs(bf16 - fp32) < 0.1 * fp32
    assert bf16 != fp32


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"precision: got 'half', expected one of 'float32', 'bfloat16'"):
        rf.set_matmul_precision("half")
    assert rf.get_matmul_precision() == "float32"


@pytest.fixture
def core_without_tiles(monkeypatch):
    """The package sees a core module that reports no bfloat16 unit, as on a CPU without AMX-BF16 and
    AVX512-BF16."""

    class NoTiles:
        ISA = "avx2"

        def __getattr__(self, name):
            return getattr(core, name)

        def build_info(self):
            return {**core.build_info(), "amx_bf16": False, "bf16_products": None}

    monkeypatch.setattr(rf, "core", NoTiles())


def test_bfloat16_without_tiles_is_refused_clearly(core_without_tiles):
    with pytest.raises(ValueError, match=r"precision: got 'bfloat16', which needs AMX-BF16 or AVX512-BF16.*'avx2'"):
        rf.set_matmul_precision("bfloat16")
    assert rf.get_matmul_precision() == "float32"


def test_build_info_reports_the_precision_and_the_bfloat16_unit():
    info = rf.build_info()
    assert info["matmul_precision"] == "float32"
    assert info["bf16_products"] in ("amx", "avx512_bf16", None)
    assert info["amx_bf16"] is (info["bf16_products"] == "amx")
    if info["isa"] != "avx512":
        assert info["bf16_products"] is None
    cpuinfo = Path("/proc/cpuinfo")
    if info["isa"] == "avx512" and cpuinfo.exists():
        flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.M).group(1).split())
        if "avx512_bf16" in flags:  # the kernel's view of the CPU, independent of the module's own check
            assert info["bf16_products"] in ("amx", "avx512_bf16")
        if not {"avx512_bf16", "amx_bf16"} & flags:
            assert info["bf16_products"] is None


# ----- command line ----------------------------------------------------------------------------------------------
def write_corpus(folder) -> str:
    path = folder / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 80)
    return str(path)


@needs_bf16_unit
def test_train_with_bfloat16_products_learns_like_float32(tmp_path, capsys):
    from test_cli_lm import SMALL, read_metrics, run_main

    corpus = write_corpus(tmp_path)
    finals = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        code, _, err = run_main(
            ["train", "--data", corpus, *SMALL, "--epochs", "3", "--matmul-precision", precision, "--out", out], capsys
        )
        assert code == 0, err
        finals[precision] = read_metrics(out)[-1]["val_loss"]
    rf.set_matmul_precision("float32")
    assert finals["bfloat16"] != finals["float32"]
    assert abs(finals["bfloat16"] - finals["float32"]) < 0.1 * finals["float32"]


def test_train_refuses_bfloat16_without_tiles_in_one_line(tmp_path, core_without_tiles, capsys):
    from test_cli_lm import SMALL, assert_usage_error, run_main

    out = tmp_path / "run"
    code, _, err = run_main(
        ["train", "--data", write_corpus(tmp_path), *SMALL, "--matmul-precision", "bfloat16", "--out", out], capsys
    )
    assert_usage_error(code, err, "precision", "bfloat16", "AMX-BF16")
    assert not out.exists()
