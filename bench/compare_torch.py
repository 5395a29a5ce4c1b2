"""rnnfast against PyTorch, side by side in one process: training steps, inference forwards, batch-1 generation,
whole language-model training steps.

Both libraries get the same thread count and the same weights (copied from the PyTorch layer), their outputs and
gradients are checked for agreement before anything is timed, and repetitions alternate between the two so that
a change in machine load hits both alike. Reports medians as a markdown table with speedup = torch / rnnfast and
a geometric mean per group; ``--json`` also writes every repetition.

    python bench/compare_torch.py --threads 2 --json results.json
    python bench/compare_torch.py --quick          # smoke run: small configs, 3 repetitions
    python bench/compare_torch.py --sections train,infer --config lstm,20,128,300,300,1   # your own shapes
    python bench/compare_torch.py --sections train,infer,lm --matmul-precision bfloat16  # mixed precision
    python bench/compare_torch.py --sections int8      # int8 weights: rnnfast int8, rnnfast float32, torch int8

With ``--matmul-precision bfloat16`` both sides multiply in bfloat16 with float32 sums: rnnfast under
``rf.set_matmul_precision("bfloat16")``, PyTorch under ``torch.autocast("cpu", dtype=torch.bfloat16)``. rnnfast
is then checked against PyTorch in float32 within BF16_TOLERANCE; PyTorch's own bfloat16 results are timed as
they are, and their distance from float32 is reported (``torch_bf16_rel_diff``).

The int8 section times three sides in one interleaved loop: rnnfast with ``model.quantize("int8")``, the same
rnnfast model in float32, and PyTorch's dynamic int8 quantization (``torch.ao.quantization.quantize_dynamic`` of
the LSTM and the output layer) in the same step loop; its speedups are int8 against each of the other two. It
also measures the machine's read bandwidth (a 2-thread ``torch.sum`` over 16 MiB and 256 MiB) to set the int8
weight streams against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

import rnnfast as rf

# Worst |rnnfast - torch| over max |torch| of any output or gradient: float32 results of the same math summed in a
# different order agree to ~1e-6; a wrong kernel is off by far more.
TOLERANCE = 1e-4
BF16_TOLERANCE = 5e-2  # bfloat16 keeps 8 significant bits; the two libraries round different intermediates
# What PyTorch's forward passes run under: nothing, or bfloat16 autocast with --matmul-precision bfloat16.
torch_precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


@dataclass(frozen=True)
class LayerConfig:
    cell: str  # lstm, gru, rnn (tanh)
    T: int
    B: int
    I: int
    H: int
    layers: int
    bidirectional: bool = False

    def label(self) -> str:
        bi = " bi" if self.bidirectional else ""
        return f"{self.cell} T={self.T} B={self.B} I={self.I} H={self.H} L={self.layers}{bi}"


@dataclass(frozen=True)
class GenerationConfig:
    vocab: int
    embed: int
    hidden: int
    layers: int
    prompt: int
    tokens: int
    # bfloat16: rnnfast with weight_dtype="bfloat16" against the PyTorch loop on the model in bfloat16
    weight_dtype: str = "float32"

    def label(self) -> str:
        weights = "" if self.weight_dtype == "float32" else f", {self.weight_dtype}"
        return (
            f"lstm {self.layers}x{self.hidden} embed={self.embed} vocab={self.vocab} "
            f"prompt={self.prompt} new={self.tokens}{weights}"
        )


@dataclass(frozen=True)
class LMConfig:
    """A whole language-model training step: embedding -> LSTM stack -> linear head -> softmax cross-entropy ->
    gradient clipping -> optimizer update, with the state carried from step to step (truncated BPTT)."""

    name: str
    vocab: int
    embed: int
    hidden: int
    layers: int
    T: int
    B: int
    optimizer: str  # sgd or adam
    lr: float
    clip: float

    def label(self) -> str:
        return (
            f"{self.name}: V={self.vocab} E={self.embed} lstm {self.layers}x{self.hidden} T={self.T} B={self.B} "
            f"{self.optimizer}"
        )


TRAIN = [
    LayerConfig("lstm", 35, 20, 200, 200, 2),
    LayerConfig("lstm", 35, 20, 650, 650, 2),
    LayerConfig("lstm", 100, 64, 512, 512, 1),
    LayerConfig("lstm", 35, 64, 1024, 1024, 1),
    LayerConfig("lstm", 100, 1, 256, 256, 1),
    LayerConfig("gru", 100, 64, 512, 512, 1),
    LayerConfig("rnn", 100, 64, 512, 512, 1),
    LayerConfig("gru", 35, 20, 200, 200, 2),
    LayerConfig("lstm", 50, 32, 256, 256, 2, bidirectional=True),
]
INFER = [
    LayerConfig("lstm", 35, 20, 650, 650, 2),
    LayerConfig("lstm", 100, 64, 512, 512, 1),
    LayerConfig("lstm", 100, 1, 256, 256, 1),
]
GENERATE = [
    GenerationConfig(vocab=65, embed=128, hidden=512, layers=2, prompt=16, tokens=500),
    GenerationConfig(vocab=10000, embed=512, hidden=512, layers=2, prompt=16, tokens=500),
    GenerationConfig(vocab=65, embed=128, hidden=512, layers=2, prompt=16, tokens=500, weight_dtype="bfloat16"),
    GenerationConfig(vocab=10000, embed=512, hidden=512, layers=2, prompt=16, tokens=500, weight_dtype="bfloat16"),
]

INT8_GENERATE = [
    GenerationConfig(vocab=65, embed=128, hidden=512, layers=2, prompt=16, tokens=500, weight_dtype="int8"),
    GenerationConfig(vocab=10000, embed=512, hidden=512, layers=2, prompt=16, tokens=500, weight_dtype="int8"),
]
INT8_INFER = [LayerConfig("lstm", 100, 64, 512, 512, 2)]

LM = [
    LMConfig("Penn Treebank small", 10000, 200, 200, 2, 20, 20, "sgd", 20.0, 0.25),
    LMConfig("tinyshakespeare", 65, 64, 256, 2, 100, 64, "adam", 2e-3, 5.0),
]

QUICK_TRAIN = [
    LayerConfig("lstm", 35, 20, 200, 200, 2),
    LayerConfig("gru", 35, 20, 200, 200, 2),
    LayerConfig("rnn", 35, 20, 200, 200, 1),
    LayerConfig("lstm", 100, 1, 256, 256, 1),
    LayerConfig("lstm", 20, 8, 128, 128, 2, bidirectional=True),
]
QUICK_INFER = [LayerConfig("lstm", 35, 20, 200, 200, 2), LayerConfig("lstm", 100, 1, 256, 256, 1)]
QUICK_GENERATE = [
    GenerationConfig(g.vocab, g.embed, g.hidden, g.layers, g.prompt, 20, g.weight_dtype) for g in GENERATE
]
QUICK_LM = [LMConfig("small word model", 2000, 64, 64, 2, 20, 8, "sgd", 1.0, 0.25)]
QUICK_INT8_GENERATE = [
    GenerationConfig(g.vocab, g.embed, g.hidden, g.layers, g.prompt, 20, "int8") for g in INT8_GENERATE
]
QUICK_INT8_INFER = [LayerConfig("lstm", 20, 64, 256, 256, 2)]

SECTIONS = ("train", "infer", "generate", "lm", "int8")


# ----- timing ---------------------------------------------------------------------------------------------------


def interleaved_sides(sides: dict[str, Callable[[], object]], warmup: int, reps: int) -> dict[str, list[float]]:
    """Milliseconds per repetition for each side, rotating which side goes first."""
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    names = list(sides)
    times = {name: [] for name in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            start = time.perf_counter()
            sides[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def interleaved(torch_fn: Callable[[], object], rf_fn: Callable[[], object], warmup: int, reps: int):
    """Milliseconds per repetition for each side, alternating which side goes first."""
    times = interleaved_sides({"torch": torch_fn, "rnnfast": rf_fn}, warmup, reps)
    return times["torch"], times["rnnfast"]


def result(group: str, label: str, config, torch_ms, rf_ms, max_rel_diff, **extra) -> dict:
    t, r = statistics.median(torch_ms), statistics.median(rf_ms)
    return {
        "group": group,
        "label": label,
        "config": asdict(config),
        "torch_ms": t,
        "rnnfast_ms": r,
        "speedup": t / r,
        "max_rel_diff": max_rel_diff,
        "torch_ms_all": torch_ms,
        "rnnfast_ms_all": rf_ms,
        **extra,
    }


# ----- agreement ------------------------------------------------------------------------------------------------


def rel_diff(ours, theirs) -> float:
    ours = ours.detach().double().numpy() if hasattr(ours, "detach") else np.asarray(ours, dtype=np.float64)
    theirs = theirs.detach().double().numpy() if hasattr(theirs, "detach") else np.asarray(theirs, np.float64)
    if ours.shape != theirs.shape:
        return math.inf
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def in_float32(fn: Callable[[], object]):
    """fn() with PyTorch in float32 (no autocast): the reference rnnfast is checked against."""
    global torch_precision
    saved, torch_precision = torch_precision, contextlib.nullcontext
    try:
        return fn()
    finally:
        torch_precision = saved


def require_agreement(diffs: dict, what: str) -> float:
    worst_name = max(diffs, key=diffs.get)
    worst = diffs[worst_name]
    tolerance = TOLERANCE if rf.get_matmul_precision() == "float32" else BF16_TOLERANCE
    if not worst <= tolerance:
        sys.exit(
            f"MISMATCH in {what}: {worst_name} differs from PyTorch by {worst:.3g} (max abs difference / "
            f"max abs value; tolerance {tolerance:g}); not timing it"
        )
    return worst


# ----- recurrent layers -----------------------------------------------------------------------------------------


def layer_pair(torch, cfg: LayerConfig):
    """A PyTorch layer and an rnnfast layer holding the same weights."""
    torch_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg.cell]
    rf_cls = {"lstm": rf.LSTM, "gru": rf.GRU, "rnn": rf.RNN}[cfg.cell]
    torch.manual_seed(0)
    theirs = torch_cls(cfg.I, cfg.H, num_layers=cfg.layers, bidirectional=cfg.bidirectional)
    ours = rf_cls(cfg.I, cfg.H, num_layers=cfg.layers, bidirectional=cfg.bidirectional)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def layer_data(cfg: LayerConfig):
    rng = np.random.default_rng(0)
    D = 2 if cfg.bidirectional else 1
    x = rng.standard_normal((cfg.T, cfg.B, cfg.I)).astype(np.float32)
    dy = rng.standard_normal((cfg.T, cfg.B, D * cfg.H)).astype(np.float32)
    return x, dy


def state_diffs(ours_state, theirs_state, cell: str) -> dict:
    if cell == "lstm":
        return {"h_n": rel_diff(ours_state[0], theirs_state[0]), "c_n": rel_diff(ours_state[1], theirs_state[1])}
    return {"h_n": rel_diff(ours_state, theirs_state)}


def bench_train(torch, cfg: LayerConfig, warmup: int, reps: int) -> dict:
    """One training step over the whole sequence: zero gradients, forward, backward (including dx)."""
    theirs, ours = layer_pair(torch, cfg)
    x, dy = layer_data(cfg)
    x_t = torch.from_numpy(x).requires_grad_(True)
    dy_t = torch.from_numpy(dy)

    def torch_step():
        theirs.zero_grad()
        x_t.grad = None
        with torch_precision():
            y, state = theirs(x_t)
        y.backward(dy_t.to(y.dtype))
        return y, state

    def rf_step():
        ours.zero_grad()
        y, state = ours(x)
        dx, _ = ours.backward(dy)
        return y, state, dx

    def diffs_from(y, state, dx, grads) -> dict:
        diffs = {"y": rel_diff(y, y_t), "dx": rel_diff(dx, dx_t), **state_diffs(state, state_t, cfg.cell)}
        for name in grads_t:
            diffs[f"d{name}"] = rel_diff(grads[name], grads_t[name])
        return diffs

    y_t, state_t = in_float32(torch_step)
    dx_t, grads_t = x_t.grad.clone(), {name: p.grad.clone() for name, p in theirs.named_parameters()}
    y, state, dx = rf_step()
    worst = require_agreement(diffs_from(y, state, dx, ours.grads), f"train {cfg.label()}")
    extra = {}
    if torch_precision is not contextlib.nullcontext:
        y_mixed, state_mixed = torch_step()
        grads_mixed = {name: p.grad for name, p in theirs.named_parameters()}
        extra["torch_bf16_rel_diff"] = max(diffs_from(y_mixed, state_mixed, x_t.grad, grads_mixed).values())

    torch_ms, rf_ms = interleaved(torch_step, rf_step, warmup, reps)
    return result("train", cfg.label(), cfg, torch_ms, rf_ms, worst, **extra)


def bench_infer(torch, cfg: LayerConfig, warmup: int, reps: int) -> dict:
    """Forward only: PyTorch under no_grad, rnnfast in eval() (no training workspace)."""
    theirs, ours = layer_pair(torch, cfg)
    theirs.eval()
    ours.eval()
    x, _ = layer_data(cfg)
    x_t = torch.from_numpy(x)

    def torch_forward():
        with torch.no_grad(), torch_precision():
            return theirs(x_t)

    def rf_forward():
        return ours(x)

    y_t, state_t = in_float32(torch_forward)
    y, state = rf_forward()
    worst = require_agreement({"y": rel_diff(y, y_t), **state_diffs(state, state_t, cfg.cell)}, f"infer {cfg.label()}")
    torch_ms, rf_ms = interleaved(torch_forward, rf_forward, warmup, reps)
    return result("infer", cfg.label(), cfg, torch_ms, rf_ms, worst)


# ----- generation -----------------------------------------------------------------------------------------------


class TorchLanguageModel:
    """embedding -> LSTM stack -> linear head in PyTorch, with its weights under rnnfast.LanguageModel's names."""

    def __init__(self, torch, vocab: int, embed: int, hidden: int, layers: int):
        self.torch = torch
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(vocab, embed)
        self.lstm = torch.nn.LSTM(embed, hidden, num_layers=layers)
        self.head = torch.nn.Linear(hidden, vocab)

    def parameters(self) -> list:
        return [*self.embedding.parameters(), *self.lstm.parameters(), *self.head.parameters()]

    def state_dict(self) -> dict:
        return {
            "embedding.weight": self.embedding.weight,
            "head.weight": self.head.weight,
            "head.bias": self.head.bias,
            **{f"rnn.{k}": v for k, v in self.lstm.state_dict().items()},
        }

    def rnnfast_copy(self):
        vocab, embed = self.embedding.weight.shape
        ours = rf.LanguageModel(vocab, embed, self.lstm.hidden_size, num_layers=self.lstm.num_layers, cell="lstm")
        ours.load_state_dict({k: v.detach().numpy() for k, v in self.state_dict().items()})
        return ours


class TorchGenerator(TorchLanguageModel):
    """The usual PyTorch sampling loop: embedding -> LSTM step with carried state -> linear -> softmax -> sample."""

    def __init__(self, torch, cfg: GenerationConfig):
        super().__init__(torch, cfg.vocab, cfg.embed, cfg.hidden, cfg.layers)

    def to_bfloat16(self) -> None:
        for module in (self.embedding, self.lstm, self.head):
            module.to(self.torch.bfloat16)

    def generate(self, prompt: np.ndarray, max_new_tokens: int, temperature: float, seed: int):
        torch = self.torch
        generator = torch.Generator().manual_seed(seed)
        out = []
        with torch.no_grad():
            y, state = self.lstm(self.embedding(torch.from_numpy(prompt)).unsqueeze(1))  # (P, 1, E)
            logits = self.head(y[-1]).float()  # (1, V)
            for i in range(max_new_tokens):
                if temperature == 0:
                    token = logits.argmax(dim=-1, keepdim=True)
                else:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    token = torch.multinomial(probs, 1, generator=generator)  # (1, 1)
                out.append(token)
                if i + 1 < max_new_tokens:
                    y, state = self.lstm(self.embedding(token), state)  # (1, 1, E): T=1, B=1
                    logits = self.head(y[0]).float()
        return torch.cat(out).view(-1).numpy()


def rounded_in_bfloat16(name: str) -> bool:
    """The parameters weight_dtype="bfloat16" rounds: the weight matrices (biases and the embedding stay float32)."""
    return name.startswith("rnn.weight") or name == "head.weight"


def bench_generate(torch, cfg: GenerationConfig, warmup: int, reps: int) -> dict:
    theirs = TorchGenerator(torch, cfg)
    ours = theirs.rnnfast_copy()
    ours.eval()
    prompt = np.random.default_rng(0).integers(0, cfg.vocab, cfg.prompt)

    bf16 = cfg.weight_dtype == "bfloat16"
    ours_generate = lambda temperature: np.asarray(  # noqa: E731
        ours.generate(prompt, cfg.tokens, temperature=temperature, seed=0, weight_dtype=cfg.weight_dtype)
    )

    # Same weights, greedy decoding: both must pick the same tokens. With bfloat16 weights the reference is
    # rnnfast's float32 path on a copy whose weight matrices PyTorch rounded to bfloat16 (PyTorch's own bfloat16
    # loop also rounds every activation, so its tokens drift apart).
    if bf16:
        rounded = theirs.rnnfast_copy()
        rounded.load_state_dict(
            {
                k: (v.detach().to(torch.bfloat16).float() if rounded_in_bfloat16(k) else v.detach()).numpy()
                for k, v in theirs.state_dict().items()
            }
        )
        rounded.eval()
        theirs.to_bfloat16()
    greedy = ours_generate(0.0)
    greedy_ref = (
        np.asarray(rounded.generate(prompt, cfg.tokens, temperature=0.0))
        if bf16
        else theirs.generate(prompt, cfg.tokens, 0.0, 0)
    )
    if greedy.shape != (cfg.tokens,) or not np.array_equal(greedy, greedy_ref):
        first = next((i for i, (a, b) in enumerate(zip(greedy, greedy_ref)) if a != b), min(len(greedy), cfg.tokens))
        reference = "float32 on bfloat16-rounded weights" if bf16 else "PyTorch's"
        sys.exit(
            f"MISMATCH in generate {cfg.label()}: greedy tokens differ from {reference} (rnnfast returned "
            f"shape {greedy.shape}, first difference at token {first}); not timing it"
        )
    sampled = ours_generate(1.0)
    if sampled.shape != (cfg.tokens,) or sampled.min() < 0 or sampled.max() >= cfg.vocab:
        sys.exit(
            f"MISMATCH in generate {cfg.label()}: sampling returned shape {sampled.shape} with ids in "
            f"[{sampled.min()}, {sampled.max()}], expected ({cfg.tokens},) ids in [0, {cfg.vocab})"
        )

    torch_ms, rf_ms = interleaved(
        lambda: theirs.generate(prompt, cfg.tokens, 1.0, 0), lambda: ours_generate(1.0), warmup, reps
    )
    row = result("generate", cfg.label(), cfg, torch_ms, rf_ms, 0.0)
    row["torch_tokens_per_s"] = cfg.tokens / (row["torch_ms"] * 1e-3)
    row["rnnfast_tokens_per_s"] = cfg.tokens / (row["rnnfast_ms"] * 1e-3)
    # Each token reads every recurrent and head weight once (and one embedding row): once they outgrow the
    # caches, memory bandwidth bounds tokens/s. The prompt's tokens skip the head, so this slightly overstates.
    weight_bytes = sum(
        v.size * (2 if bf16 and rounded_in_bfloat16(k) else 4)
        for k, v in ours.named_parameters().items()
        if not k.startswith("embedding")
    )
    row["weight_mb_per_token"] = weight_bytes / 1e6
    row["rnnfast_weight_gb_per_s"] = weight_bytes * row["rnnfast_tokens_per_s"] / 1e9
    return row


# ----- int8 weights ----------------------------------------------------------------------------------------------


def torch_dynamic_int8(torch, **modules) -> dict:
    """PyTorch's dynamic int8 quantization of the given LSTM and Linear modules (int8 weights, activations
    quantized at run time), as deployments use it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_dynamic is deprecated in 2.13 but still the documented route
        container = torch.ao.quantization.quantize_dynamic(
            torch.nn.ModuleDict(modules), {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8
        )
    return dict(container.items())


def int8_weight_bytes(model) -> int:
    """Bytes a generated token reads: int8 weight matrices and their scales, float32 biases (not the embedding)."""
    state = model.state_dict()
    return sum(v.nbytes for k, v in state.items() if not k.startswith("embedding"))


def read_bandwidth_gb_per_s(torch, mib: int, reps: int = 20) -> float:
    """The machine's read rate: median of a torch.sum over a float32 buffer of `mib` MiB, threads as set."""
    x = torch.ones(mib * 2**20 // 4)
    x.sum()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - start)
    return x.numel() * 4 / statistics.median(times) / 1e9


def three_way(group: str, label: str, cfg, times: dict, max_rel_diff: float, **extra) -> dict:
    ms = {name: statistics.median(values) for name, values in times.items()}
    return {
        "group": group,
        "label": label,
        "config": asdict(cfg),
        **{f"{name}_ms": value for name, value in ms.items()},
        "speedup_vs_float32": ms["rnnfast_float32"] / ms["rnnfast_int8"],
        "speedup_vs_torch_int8": ms["torch_int8"] / ms["rnnfast_int8"],
        "max_rel_diff": max_rel_diff,
        **{f"{name}_ms_all": values for name, values in times.items()},
        **extra,
    }


def bench_int8_generate(torch, cfg: GenerationConfig, warmup: int, reps: int) -> dict:
    """Batch-1 generation: rnnfast int8, rnnfast float32 and PyTorch's dynamic int8 model in the same step loop."""
    theirs = TorchGenerator(torch, cfg)
    ours = theirs.rnnfast_copy().eval()
    ours_int8 = ours.quantize("int8")
    quantized = torch_dynamic_int8(torch, lstm=theirs.lstm, head=theirs.head)
    theirs.lstm, theirs.head = quantized["lstm"], quantized["head"]
    prompt = np.random.default_rng(0).integers(0, cfg.vocab, cfg.prompt)
    # How far int8 moves the logits: the forward over a random sequence, relative to float32's.
    ids = np.random.default_rng(1).integers(0, cfg.vocab, (64, 1))
    diff = rel_diff(ours_int8.forward(ids)[0], ours.forward(ids)[0])
    if not diff < 0.1:
        sys.exit(f"MISMATCH in int8 generate {cfg.label()}: int8 logits differ from float32 by {diff:.3g}")
    times = interleaved_sides(
        {
            "torch_int8": lambda: theirs.generate(prompt, cfg.tokens, 1.0, 0),
            "rnnfast_float32": lambda: ours.generate(prompt, cfg.tokens, seed=0),
            "rnnfast_int8": lambda: ours_int8.generate(prompt, cfg.tokens, seed=0),
        },
        warmup,
        reps,
    )
    row = three_way("int8_generate", cfg.label(), cfg, times, diff)
    for side in ("torch_int8", "rnnfast_float32", "rnnfast_int8"):
        row[f"{side}_tokens_per_s"] = cfg.tokens / (row[f"{side}_ms"] * 1e-3)
    row["int8_mb_per_token"] = int8_weight_bytes(ours_int8) / 1e6
    row["int8_gb_per_s"] = row["int8_mb_per_token"] * row["rnnfast_int8_tokens_per_s"] / 1e3
    return row


def bench_int8_infer(torch, cfg: LayerConfig, warmup: int, reps: int) -> dict:
    """A whole-sequence forward at batch B: rnnfast int8 and float32 LSTM, PyTorch's dynamic int8 LSTM."""
    theirs, ours = layer_pair(torch, cfg)
    ours.eval()
    ours_int8 = ours.quantize("int8")
    theirs_int8 = torch_dynamic_int8(torch, lstm=theirs)["lstm"]
    x, _ = layer_data(cfg)
    x_t = torch.from_numpy(x)
    diff = rel_diff(ours_int8(x)[0], ours(x)[0])
    if not diff < 0.1:
        sys.exit(f"MISMATCH in int8 infer {cfg.label()}: int8 outputs differ from float32 by {diff:.3g}")

    def torch_forward():
        with torch.no_grad():
            return theirs_int8(x_t)

    times = interleaved_sides(
        {"torch_int8": torch_forward, "rnnfast_float32": lambda: ours(x), "rnnfast_int8": lambda: ours_int8(x)},
        warmup,
        reps,
    )
    return three_way("int8_infer", cfg.label(), cfg, times, diff)


def print_int8(generate_rows: list[dict], infer_rows: list[dict], bandwidth: dict) -> None:
    print("\n### int8 weights: batch-1 generation (tokens/s)\n")
    print(
        "| config | torch int8 | rnnfast float32 | rnnfast int8 | int8 weight reads | int8 / float32 | "
        "int8 / torch int8 |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for r in generate_rows:
        print(
            f"| {r['label']} | {r['torch_int8_tokens_per_s']:.0f} | {r['rnnfast_float32_tokens_per_s']:.0f} | "
            f"{r['rnnfast_int8_tokens_per_s']:.0f} | {r['int8_mb_per_token']:.2f} MB/token = "
            f"{r['int8_gb_per_s']:.1f} GB/s | {r['speedup_vs_float32']:.2f}x | {r['speedup_vs_torch_int8']:.2f}x |"
        )
    print("\n### int8 weights: inference forward (ms)\n")
    print(
        "| config | torch int8 | rnnfast float32 | rnnfast int8 | int8 / float32 | int8 / torch int8 |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for r in infer_rows:
        print(
            f"| {r['label']} | {r['torch_int8_ms']:.1f} | {r['rnnfast_float32_ms']:.1f} | {r['rnnfast_int8_ms']:.1f} | "
            f"{r['speedup_vs_float32']:.2f}x | {r['speedup_vs_torch_int8']:.2f}x |"
        )
    print(
        "\nRead bandwidth (torch.sum, same threads): "
        + ", ".join(f"{gb:.1f} GB/s over {mib} MiB" for mib, gb in bandwidth.items())
        + f"; int8 unit {rf.build_info()['int8_unit']}"
    )
    sys.stdout.flush()


# ----- language-model training step ----------------------------------------------------------------------------


def bench_lm(torch, cfg: LMConfig, warmup: int, reps: int) -> dict:
    """What `rnnfast train` and bench/torch_lm.py do per batch, state carried (and detached) between steps."""
    theirs = TorchLanguageModel(torch, cfg.vocab, cfg.embed, cfg.hidden, cfg.layers)
    ours = theirs.rnnfast_copy()
    optimizers = {"sgd": (torch.optim.SGD, rf.optim.SGD), "adam": (torch.optim.Adam, rf.optim.Adam)}
    torch_opt_cls, rf_opt_cls = optimizers[cfg.optimizer]
    torch_opt = torch_opt_cls(theirs.parameters(), lr=cfg.lr)
    rf_opt = rf_opt_cls(ours.parameters(), lr=cfg.lr)
    tokens = np.random.default_rng(0).integers(0, cfg.vocab, (cfg.T + 1, cfg.B))
    x, y = tokens[:-1], tokens[1:]
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    carried = {"torch": None, "rnnfast": None}

    def torch_step():
        state = carried["torch"]
        state = None if state is None else tuple(s.detach() for s in state)
        with torch_precision():
            out, state = theirs.lstm(theirs.embedding(x_t), state)
            loss = torch.nn.functional.cross_entropy(theirs.head(out).view(-1, cfg.vocab), y_t)
        torch_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), cfg.clip)
        torch_opt.step()
        carried["torch"] = state
        return loss.item()

    def rf_step():
        ours.zero_grad()
        loss, carried["rnnfast"] = ours.loss(x, y, carried["rnnfast"])
        ours.backward()
        rf.clip_grad_norm(ours, cfg.clip)
        rf_opt.step()
        return loss

    # One step from the same weights: the same loss and the same updated weights. With bfloat16 products only
    # the loss is compared: Adam's first update is about lr * sign(gradient), so a gradient near zero that
    # rounding flips moves a weight by 2 * lr, which is no measure of the step's accuracy.
    diffs = {"loss": rel_diff(np.float64(rf_step()), np.float64(in_float32(torch_step)))}
    ours_params = ours.named_parameters()
    for name, value in theirs.state_dict().items():
        if rf.get_matmul_precision() == "float32":
            diffs[name] = rel_diff(ours_params[name], value)
    worst = require_agreement(diffs, f"lm {cfg.label()}")

    torch_ms, rf_ms = interleaved(torch_step, rf_step, warmup, reps)
    row = result("lm", cfg.label(), cfg, torch_ms, rf_ms, worst)
    row["torch_tokens_per_s"] = cfg.T * cfg.B / (row["torch_ms"] * 1e-3)
    row["rnnfast_tokens_per_s"] = cfg.T * cfg.B / (row["rnnfast_ms"] * 1e-3)
    return row


# ----- report ---------------------------------------------------------------------------------------------------


def geomean(values) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def print_group(title: str, rows: list[dict]) -> None:
    print(f"\n### {title}\n")
    if rows[0]["group"] == "generate":
        print(
            "| config | torch tokens/s | rnnfast tokens/s | rnnfast weight reads | speedup |\n|---|---:|---:|---:|---:|"
        )
        for r in rows:
            print(
                f"| {r['label']} | {r['torch_tokens_per_s']:.0f} | {r['rnnfast_tokens_per_s']:.0f} | "
                f"{r['weight_mb_per_token']:.1f} MB/token = {r['rnnfast_weight_gb_per_s']:.1f} GB/s | "
                f"{r['speedup']:.2f}x |"
            )
    elif rows[0]["group"] == "lm":
        print(
            "| config | torch ms | rnnfast ms | torch tokens/s | rnnfast tokens/s | speedup |\n"
            "|---|---:|---:|---:|---:|---:|"
        )
        for r in rows:
            print(
                f"| {r['label']} | {r['torch_ms']:.2f} | {r['rnnfast_ms']:.2f} | {r['torch_tokens_per_s']:.0f} | "
                f"{r['rnnfast_tokens_per_s']:.0f} | {r['speedup']:.2f}x |"
            )
    else:
        print("| config | torch ms | rnnfast ms | speedup |\n|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['label']} | {r['torch_ms']:.2f} | {r['rnnfast_ms']:.2f} | {r['speedup']:.2f}x |")
    padding = {"lm": " | |", "generate": " |"}.get(rows[0]["group"], "")
    print(f"| **geometric mean** | | |{padding} **{geomean([r['speedup'] for r in rows]):.2f}x** |")
    sys.stdout.flush()


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 1")
    return value


def section_list(text: str) -> list[str]:
    names = [s for s in text.split(",") if s]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a comma-separated subset of {','.join(SECTIONS)}")
    return names


def layer_config(text: str) -> LayerConfig:
    """cell,T,B,I,H,layers[,bi], e.g. lstm,20,128,300,300,1 or gru,50,32,256,256,2,bi"""
    parts = text.split(",")
    bidirectional = parts[-1] == "bi"
    fields = parts[:-1] if bidirectional else parts
    cell, sizes = (fields[0], fields[1:]) if fields else ("", [])
    if cell not in ("lstm", "gru", "rnn") or len(sizes) != 5 or not all(v.isdigit() and int(v) > 0 for v in sizes):
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected cell,T,B,I,H,layers[,bi] with cell lstm, gru or rnn and positive integers"
        )
    return LayerConfig(cell, *map(int, sizes), bidirectional=bidirectional)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive_int, default=2, help="threads for both libraries (default 2)")
    parser.add_argument("--reps", type=positive_int, help="timed repetitions per side (default 10, --quick 3)")
    parser.add_argument("--warmup", type=positive_int, help="untimed repetitions per side (default 2, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="small configs and few repetitions: a smoke run")
    parser.add_argument(
        "--sections",
        type=section_list,
        default=list(SECTIONS),
        help="comma-separated subset of train,infer,generate,lm,int8 (default: all)",
    )
    parser.add_argument(
        "--no-mkldnn",
        action="store_true",
        help="turn off PyTorch's oneDNN (mkldnn) path and compare with its native kernels",
    )
    parser.add_argument(
        "--config",
        type=layer_config,
        action="append",
        metavar="CELL,T,B,I,H,LAYERS[,bi]",
        help="time this layer configuration instead of the built-in ones in the train and infer "
        "sections (repeatable), e.g. --config lstm,20,128,300,300,1",
    )
    parser.add_argument(
        "--matmul-precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16: rnnfast's bfloat16 matmul precision against PyTorch's bfloat16 autocast",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every repetition and the summary as JSON")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 10)
    warmup = args.warmup or (1 if args.quick else 2)

    try:
        import torch
    except ImportError:
        sys.exit("compare_torch.py needs PyTorch in the same environment (pip install torch)")
    torch.set_num_threads(args.threads)
    rf.set_num_threads(args.threads)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    if args.matmul_precision == "bfloat16":
        global torch_precision
        try:
            rf.set_matmul_precision("bfloat16")
        except ValueError as exc:
            sys.exit(f"--matmul-precision: {exc}")
        torch_precision = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731

    meta = {
        "threads": args.threads,
        "matmul_precision": args.matmul_precision,
        "reps": reps,
        "warmup": warmup,
        "quick": args.quick,
        "torch": torch.__version__,
        "torch_mkldnn": torch.backends.mkldnn.enabled,
        "rnnfast": rf.build_info(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(
        f"# rnnfast {meta['rnnfast']['version']} ({meta['rnnfast']['isa']}) vs torch {torch.__version__} "
        f"(mkldnn {'on' if meta['torch_mkldnn'] else 'off'}), {args.threads} thread(s) each, "
        f"median of {reps} interleaved reps after {warmup} warm-up; speedup = torch / rnnfast"
    )

    train, infer, generate, lm = (
        (QUICK_TRAIN, QUICK_INFER, QUICK_GENERATE, QUICK_LM) if args.quick else (TRAIN, INFER, GENERATE, LM)
    )
    int8_generate, int8_infer = (QUICK_INT8_GENERATE, QUICK_INT8_INFER) if args.quick else (INT8_GENERATE, INT8_INFER)
    if args.config:
        train = infer = args.config
    groups = {}

    def run_group(title: str, bench, configs) -> None:
        groups[title] = [bench(torch, cfg, warmup, reps) for cfg in configs]
        print_group(title, groups[title])

    if "train" in args.sections:
        run_group("Training step (forward + backward, full sequence)", bench_train, train)
    if "infer" in args.sections:
        run_group("Inference forward", bench_infer, infer)
    if "generate" in args.sections:
        if hasattr(rf, "LanguageModel"):
            run_group("Batch-1 generation (prompt + sampled tokens, temperature 1)", bench_generate, generate)
        else:
            print("\n# skipping generation: this rnnfast has no LanguageModel")
    if "lm" in args.sections:
        run_group("Language-model training step (embedding, LSTM, head, loss, clipping, update)", bench_lm, lm)

    if "int8" in args.sections:
        generate_rows = [bench_int8_generate(torch, cfg, warmup, reps) for cfg in int8_generate]
        infer_rows = [bench_int8_infer(torch, cfg, warmup, reps) for cfg in int8_infer]
        meta["read_bandwidth_gb_per_s"] = {mib: read_bandwidth_gb_per_s(torch, mib) for mib in (16, 256)}
        print_int8(generate_rows, infer_rows, meta["read_bandwidth_gb_per_s"])
        groups["int8"] = generate_rows + infer_rows

    if args.json:
        summary = {title: geomean([r["speedup"] for r in rows]) for title, rows in groups.items() if title != "int8"}
        with open(args.json, "w") as f:
            json.dump(
                {"meta": meta, "geomean_speedup": summary, "results": [r for rows in groups.values() for r in rows]},
                f,
                indent=1,
            )
        print(f"\n# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
