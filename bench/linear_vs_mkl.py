"""rnnfast's packed GEMM against MKL (through PyTorch) on the three products of a linear layer, in one process with
interleaved repetitions: forward y = x W^T, and backward dx = dy W and dW = dy^T x. The default shape is the Penn
Treebank model's output layer (400 tokens, 200 inputs, 10,000 words).

    python bench/linear_vs_mkl.py --threads 2 --shape 400,200,10000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import rnnfast as rf
from rnnfast import _native


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", default="400,200,10000", help="N,I,O: tokens, inputs, outputs")
    parser.add_argument("--reps", type=int, default=25)
    args = parser.parse_args()
    N, I, O = (int(v) for v in args.shape.split(","))
    torch.set_num_threads(args.threads)
    rf.set_num_threads(args.threads)
    core = _native.core
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, I), dtype=np.float32)
    W = rng.standard_normal((O, I), dtype=np.float32)
    dy = rng.standard_normal((N, O), dtype=np.float32)
    y, dx, dW = np.empty((N, O), np.float32), np.empty((N, I), np.float32), np.zeros((O, I), np.float32)
    xt, Wt, dyt = map(torch.from_numpy, (x, W, dy))
    products = {
        "y = x W^T": (lambda: torch.mm(xt, Wt.t()), lambda: core.linear_forward(x, W, None, y)),
        "dx = dy W": (lambda: torch.mm(dyt, Wt), None),
        "dW = dy^T x": (lambda: torch.mm(dyt.t(), xt), lambda: core.linear_backward(dy, x, W, None, dW, None)),
    }
    # rnnfast computes dx together with dW; its dx time is the difference of the two calls.
    both = lambda: core.linear_backward(dy, x, W, dx, dW, None)  # noqa: E731
    times: dict[str, list[float]] = {}
    for _ in range(args.reps):
        for name, (mkl, ours) in products.items():
            for side, fn in (("mkl", mkl), ("rnnfast", ours)):
                if fn is not None:
                    start = time.perf_counter()
                    fn()
                    times.setdefault((name, side), []).append(time.perf_counter() - start)
        start = time.perf_counter()
        both()
        times.setdefault("both", []).append(time.perf_counter() - start)
    median = {k: statistics.median(v[3:]) for k, v in times.items()}
    median[("dx = dy W", "rnnfast")] = median["both"] - median[("dW = dy^T x", "rnnfast")]
    flops = 2.0 * N * I * O
    print(f"N={N} I={I} O={O}, {args.threads} threads, GFLOP/s (median of {args.reps - 3}):")
    for name in products:
        mkl, ours = flops / median[(name, "mkl")] / 1e9, flops / median[(name, "rnnfast")] / 1e9
        print(f"  {name:12s} MKL {mkl:6.1f}  rnnfast {ours:6.1f}  ratio {ours / mkl:.2f}")


if __name__ == "__main__":
    main()
