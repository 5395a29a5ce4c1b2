"""rnnfast and PyTorch when another process takes one of the cores: the same steps timed on a quiet machine and
with one core busy, side by side in one process.

The busy core is a process of this script that spins (``while True: pass``) for the whole of a measurement and is
stopped after it; the operating system places it, as it would a browser or a neighbour's job. Each row reports
the median milliseconds of both libraries in both conditions and the busy / quiet slowdown: a library whose
waiting threads spin at their barriers while another process holds the core turns the 2x that losing a core
should cost into far more.

    python bench/contention.py --threads 2 --json bench/results/contention.json
    python bench/contention.py --quick       # smoke run: small configs, 3 repetitions

Steps (shapes of compare_torch.py): the training step of a 2x256 LSTM (T=100, B=64), the tinyshakespeare
language-model step, batch-1 generation with the 2x512 character model and the B=64 inference forward.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_torch as ct  # noqa: E402

import rnnfast as rf  # noqa: E402

STEPS = [
    (ct.bench_train, ct.LayerConfig("lstm", 100, 64, 256, 256, 2)),
    (ct.bench_lm, ct.LM[1]),
    (ct.bench_generate, ct.GenerationConfig(vocab=65, embed=128, hidden=512, layers=2, prompt=16, tokens=200)),
    (ct.bench_infer, ct.LayerConfig("lstm", 100, 64, 512, 512, 1)),
]
QUICK_STEPS = [
    (ct.bench_train, ct.LayerConfig("lstm", 35, 20, 128, 128, 2)),
    (ct.bench_lm, ct.QUICK_LM[0]),
    (ct.bench_generate, ct.GenerationConfig(vocab=65, embed=32, hidden=128, layers=2, prompt=4, tokens=20)),
    (ct.bench_infer, ct.LayerConfig("lstm", 35, 20, 128, 128, 1)),
]


def spin() -> None:
    while True:
        pass


class BusyCore:
    """One process spinning for as long as the block lasts."""

    def __enter__(self):
        # spawn: a forked child would inherit the parent's OpenMP and PyTorch thread pools in an undefined state.
        self.process = multiprocessing.get_context("spawn").Process(target=spin, daemon=True)
        self.process.start()
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=ct.positive_int, default=2, help="threads for both libraries (default 2)")
    parser.add_argument("--reps", type=ct.positive_int, help="timed repetitions per side (default 10, --quick 3)")
    parser.add_argument("--warmup", type=ct.positive_int, help="untimed repetitions per side (default 2, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="small configs and few repetitions: a smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write every repetition as JSON")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 10)
    warmup = args.warmup or (1 if args.quick else 2)
    try:
        import torch
    except ImportError:
        sys.exit("contention.py needs PyTorch in the same environment (pip install torch)")
    torch.set_num_threads(args.threads)
    rf.set_num_threads(args.threads)
    meta = {
        "threads": args.threads,
        "reps": reps,
        "cpus": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "rnnfast": rf.build_info(),
        "python": platform.python_version(),
    }
    print(
        f"# rnnfast {meta['rnnfast']['version']} vs torch {torch.__version__}, {args.threads} thread(s) each on "
        f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={meta['omp_wait_policy'] or 'unset'}; median of {reps} "
        f"interleaved reps after {warmup} warm-up; busy = one other process spinning"
    )
    print(
        "\n| step | torch quiet ms | torch busy ms | torch busy/quiet | rnnfast quiet ms | rnnfast busy ms "
        "| rnnfast busy/quiet |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    rows = []
    for bench, config in QUICK_STEPS if args.quick else STEPS:
        quiet = bench(torch, config, warmup, reps)
        with BusyCore():
            busy = bench(torch, config, warmup, reps)
        row = {
            "label": quiet["label"],
            "config": quiet["config"],
            "quiet": {k: quiet[k] for k in ("torch_ms", "rnnfast_ms", "torch_ms_all", "rnnfast_ms_all")},
            "busy": {k: busy[k] for k in ("torch_ms", "rnnfast_ms", "torch_ms_all", "rnnfast_ms_all")},
            "torch_slowdown": busy["torch_ms"] / quiet["torch_ms"],
            "rnnfast_slowdown": busy["rnnfast_ms"] / quiet["rnnfast_ms"],
        }
        rows.append(row)
        print(
            f"| {row['label']} | {quiet['torch_ms']:.1f} | {busy['torch_ms']:.1f} | {row['torch_slowdown']:.2f}x | "
            f"{quiet['rnnfast_ms']:.1f} | {busy['rnnfast_ms']:.1f} | {row['rnnfast_slowdown']:.2f}x |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=1)
        print(f"\n# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
