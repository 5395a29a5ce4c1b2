"""Training throughput of a sequence classifier, rnnfast against PyTorch: sequences per second of whole training
steps on real-valued inputs (a GunPoint-like series, T=150, F=1; MFCC frames, T<=100, F=13).

Both sides are the model of `rnnfast train --task classify --format ts|wav`: LSTM -> mean over each sequence's
own steps -> linear head -> softmax cross-entropy (mean over the batch) -> global gradient-norm clipping at 5 ->
Adam (lr 2e-3), float32, with the same thread count. rnnfast is rf.SequenceClassifier; PyTorch is
torch.nn.LSTM + torch.nn.Linear, holding a copy of rnnfast's initial weights (the parameter names and gate orders
are the same). Both get the same padded time-major batches, built once. A variable-length batch runs in PyTorch
two ways: over the padding with the padded steps masked out of the mean ("padded"; a unidirectional LSTM's
outputs at valid steps do not depend on what follows, so the loss is the same), and through
pack_padded_sequence ("packed", which stops each sequence at its length as rnnfast does).

Before anything is timed, the first loss must agree to 1e-5 (relative), every gradient to 1e-4 (max |difference|
/ max |value|), and the losses of the next steps (after the clipped Adam updates) to 1e-4; otherwise the script
stops with MISMATCH. One repetition is a pass over the config's batches (zero gradients, forward, loss, backward,
clipping, update for each); the two sides alternate, and the medians are reported (sequences per second and
the ratio of the medians), with the ratio of the fastest repetitions in brackets, the less disturbed figure when
other work shares the cores.

    python bench/sequences_vs_torch.py                     # the grid below, 2 threads, 10 repetitions
    python bench/sequences_vs_torch.py --reps 5 --threads 1 --json seq.json
    python bench/sequences_vs_torch.py --no-mkldnn          # PyTorch's native kernels instead of oneDNN
    python bench/sequences_vs_torch.py --threads 1 --clock cpu   # CPU time per side: for a shared machine
    python bench/sequences_vs_torch.py --quick             # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import rnnfast as rf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_torch import TOLERANCE, interleaved, rel_diff  # noqa: E402


def interleaved_cpu(torch_fn, rf_fn, warmup: int, reps: int):
    """compare_torch.interleaved with the process's CPU time instead of the wall clock: with one thread per side
    it leaves out the time the process waited for a core, which is what other work on a shared machine adds."""
    for _ in range(warmup):
        torch_fn()
        rf_fn()
    torch_ms, rf_ms = [], []
    for rep in range(reps):
        pair = [(torch_fn, torch_ms), (rf_fn, rf_ms)]
        for fn, out in pair if rep % 2 == 0 else pair[::-1]:
            start = time.process_time()
            fn()
            out.append((time.process_time() - start) * 1e3)
    return torch_ms, rf_ms


LOSS_TOLERANCE = 1e-5
CLIP = 5.0  # rnnfast train's default --clip
LR = 2e-3  # rnnfast train's default Adam learning rate


@dataclass(frozen=True)
class Config:
    name: str
    T: int  # padded length
    min_len: int  # lengths drawn uniformly from [min_len, T]
    F: int
    B: int
    H: int
    classes: int
    batches: int = 4
    cell: str = "lstm"

    def label(self) -> str:
        lengths = f"T={self.T}" if self.min_len == self.T else f"T={self.min_len}-{self.T}"
        return f"{self.name}: {self.cell} {lengths} F={self.F} B={self.B} H={self.H} C={self.classes}"


GRID = [
    Config("GunPoint-like", 150, 150, 1, 16, 64, 2),
    Config("GunPoint-like", 150, 150, 1, 16, 128, 2),
    Config("GunPoint-like", 150, 150, 1, 32, 64, 2),
    Config("GunPoint-like", 150, 150, 1, 32, 128, 2),
    Config("MFCC frames", 100, 50, 13, 32, 64, 10),
    Config("MFCC frames", 100, 50, 13, 32, 128, 10),
]
QUICK = [
    Config("GunPoint-like", 150, 150, 1, 16, 64, 2, batches=2),
    Config("MFCC frames", 100, 50, 13, 16, 64, 10, batches=2),
]


def make_batches(cfg: Config, seed: int = 0):
    """cfg.batches padded batches (x (T, B, F) float32, lengths (B,) int64, labels (B,) int64)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(cfg.batches):
        lengths = rng.integers(cfg.min_len, cfg.T + 1, cfg.B).astype(np.int64)
        T = int(lengths.max())  # a batch is padded to its longest sequence, as rnnfast's batching does
        x = rng.standard_normal((T, cfg.B, cfg.F)).astype(np.float32)
        x[np.arange(T)[:, None] >= lengths[None, :]] = 0.0
        out.append((x, lengths, rng.integers(0, cfg.classes, cfg.B).astype(np.int64)))
    return out


class TorchClassifier:
    """torch.nn.LSTM (or GRU) + mean over valid steps + torch.nn.Linear, under rnnfast's parameter names."""

    def __init__(self, torch, cfg: Config, packed: bool):
        self.torch = torch
        self.packed = packed
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cfg.cell]
        self.rnn = cls(cfg.F, cfg.H)
        self.head = torch.nn.Linear(cfg.H, cfg.classes)

    def named_parameters(self) -> dict:
        return {
            **{f"rnn.{k}": v for k, v in self.rnn.named_parameters()},
            **{f"head.{k}": v for k, v in self.head.named_parameters()},
        }

    def parameters(self) -> list:
        return list(self.named_parameters().values())

    def load_from(self, ours) -> None:
        with self.torch.no_grad():
            for name, value in ours.state_dict().items():
                self.named_parameters()[name].copy_(self.torch.from_numpy(np.array(value)))

    def loss(self, x, lengths, labels, mask):
        torch = self.torch
        if self.packed:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], total_length=x.shape[0])
        else:
            y, _ = self.rnn(x)
        pooled = (y * mask).sum(0) / lengths[:, None].to(y.dtype)
        return torch.nn.functional.cross_entropy(self.head(pooled), labels)


def bench(torch, cfg: Config, warmup: int, reps: int, timer=interleaved) -> dict:
    ours = rf.SequenceClassifier(
        cfg.classes, input_size=cfg.F, hidden_size=cfg.H, cell=cfg.cell, pooling="mean", seed=0
    )
    variable = cfg.min_len < cfg.T
    theirs = {"padded": TorchClassifier(torch, cfg, packed=False)}
    if variable:
        theirs["packed"] = TorchClassifier(torch, cfg, packed=True)
    for model in theirs.values():
        model.load_from(ours)
    batches = make_batches(cfg)
    torch_batches = [
        (
            torch.from_numpy(x),
            torch.from_numpy(n),
            torch.from_numpy(y),
            (torch.arange(x.shape[0])[:, None] < torch.from_numpy(n)[None, :]).unsqueeze(2).float(),
        )
        for x, n, y in batches
    ]
    rf_opt = rf.optim.Adam(ours.parameters(), lr=LR)
    torch_opts = {k: torch.optim.Adam(m.parameters(), lr=LR) for k, m in theirs.items()}

    def rf_step(i: int) -> float:
        x, n, y = batches[i]
        ours.zero_grad()
        loss = ours.loss(x, y, n)
        ours.backward()
        rf.clip_grad_norm(ours, CLIP)
        rf_opt.step()
        return loss

    def torch_step(kind: str, i: int, keep_grads: bool = False):
        model, opt = theirs[kind], torch_opts[kind]
        opt.zero_grad()
        loss = model.loss(*torch_batches[i])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        grads = {k: p.grad.clone() for k, p in model.named_parameters().items()} if keep_grads else None
        opt.step()
        return loss.item(), grads

    # Agreement: step 1 (loss and gradients before clipping and the update), then the losses of steps 2..n.
    diffs = {}
    ours.zero_grad()
    first = ours.loss(*[batches[0][k] for k in (0, 2, 1)])
    ours.backward()
    rf_grads = {k: v.copy() for k, v in ours.grads.items()}
    rf.clip_grad_norm(ours, CLIP)
    rf_opt.step()
    rf_losses = [first] + [rf_step(i % cfg.batches) for i in range(1, 4)]
    for kind in theirs:
        loss, grads = torch_step(kind, 0, keep_grads=True)
        torch_losses = [loss] + [torch_step(kind, i % cfg.batches)[0] for i in range(1, 4)]
        first_diff = abs(rf_losses[0] - torch_losses[0]) / abs(torch_losses[0])
        if not first_diff <= LOSS_TOLERANCE:
            sys.exit(
                f"MISMATCH in {cfg.label()} (torch {kind}): first loss rnnfast {rf_losses[0]:.8f} torch "
                f"{torch_losses[0]:.8f}, relative difference {first_diff:.3g} > {LOSS_TOLERANCE:g}; not timing it"
            )
        diffs[f"{kind} loss 1"] = first_diff
        for name, grad in grads.items():
            diffs[f"{kind} d{name}"] = rel_diff(rf_grads[name], grad)
        for step, (a, b) in enumerate(zip(rf_losses[1:], torch_losses[1:]), start=2):
            diffs[f"{kind} loss {step}"] = abs(a - b) / abs(b)
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= TOLERANCE:
        sys.exit(f"MISMATCH in {cfg.label()}: {worst} differs by {diffs[worst]:.3g} > {TOLERANCE:g}; not timing it")

    def rf_pass():
        for i in range(cfg.batches):
            rf_step(i)

    row = {
        "label": cfg.label(),
        "config": asdict(cfg),
        "first_loss": rf_losses[0],
        "first_loss_rel_diff": max(v for k, v in diffs.items() if k.endswith("loss 1")),
        "worst_check": worst,
        "worst_rel_diff": diffs[worst],
    }
    sequences = cfg.batches * cfg.B
    for kind in theirs:

        def torch_pass(kind=kind):
            for i in range(cfg.batches):
                torch_step(kind, i)

        torch_ms, rf_ms = timer(torch_pass, rf_pass, warmup, reps)
        row[f"torch_{kind}_ms_all"], row[f"rnnfast_vs_{kind}_ms_all"] = torch_ms, rf_ms
        row[f"torch_{kind}_seq_per_s"] = sequences / (statistics.median(torch_ms) * 1e-3)
        row[f"rnnfast_vs_{kind}_seq_per_s"] = sequences / (statistics.median(rf_ms) * 1e-3)
        row[f"ratio_{kind}"] = statistics.median(torch_ms) / statistics.median(rf_ms)
        row[f"ratio_{kind}_best"] = min(torch_ms) / min(rf_ms)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both libraries (default 2)")
    parser.add_argument("--reps", type=int, help="timed repetitions per side (default 10, --quick 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions per side (default 2)")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument(
        "--no-mkldnn",
        action="store_true",
        help="turn off PyTorch's oneDNN (mkldnn) path and compare with its native kernels",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: the process's CPU time instead of wall time, only with --threads 1 (with more "
        "threads it would add up every thread, spinning included)",
    )
    parser.add_argument("--quick", action="store_true", help="two small configs, 3 repetitions: a smoke run")
    parser.add_argument("--json", help="also write every repetition as JSON")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 10)
    if args.clock == "cpu" and args.threads != 1:
        parser.error(f"--clock cpu: only with --threads 1, got --threads {args.threads}")
    try:
        import torch
    except ImportError:
        sys.exit("sequences_vs_torch.py needs PyTorch in the same environment (pip install torch)")
    torch.set_num_threads(args.threads)
    rf.set_num_threads(args.threads)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    info = rf.build_info()
    print(
        f"# rnnfast {info['version']} ({info['isa']}) vs torch {torch.__version__} (mkldnn "
        f"{'on' if torch.backends.mkldnn.enabled else 'off'}), {args.threads} thread(s) each, "
        f"float32, Adam lr {LR:g}, clip {CLIP:g}; {args.clock} time, median of {reps} interleaved passes after "
        f"{args.warmup} warm-up; "
        f"ratio = torch time / rnnfast time (> 1: rnnfast faster)"
    )
    print(
        "\n| config | rnnfast seq/s | torch seq/s (padded) | ratio (best) | torch seq/s (packed) | ratio (best) | "
        "first loss | worst check |\n|---|---:|---:|---:|---:|---:|---:|---:|",
        flush=True,
    )
    rows = []
    for cfg in QUICK if args.quick else GRID:
        cfg = Config(**{**asdict(cfg), "cell": args.cell})
        row = bench(torch, cfg, args.warmup, reps, interleaved_cpu if args.clock == "cpu" else interleaved)
        rows.append(row)
        packed = (
            f"{row['torch_packed_seq_per_s']:.0f} | {row['ratio_packed']:.2f}x ({row['ratio_packed_best']:.2f}x)"
            if "ratio_packed" in row
            else "- | -"
        )
        print(
            f"| {row['label']} | {row['rnnfast_vs_padded_seq_per_s']:.0f} | {row['torch_padded_seq_per_s']:.0f} | "
            f"{row['ratio_padded']:.2f}x ({row['ratio_padded_best']:.2f}x) | {packed} | {row['first_loss']:.6f} "
            f"(rel. diff {row['first_loss_rel_diff']:.1e}) | {row['worst_rel_diff']:.1e} |",
            flush=True,
        )
    if args.json:
        meta = {
            "threads": args.threads,
            "clock": args.clock,
            "reps": reps,
            "warmup": args.warmup,
            "torch": torch.__version__,
            "torch_mkldnn": torch.backends.mkldnn.enabled,
            "rnnfast": info,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
        print(f"\n# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
