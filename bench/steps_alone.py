"""rnnfast alone in its process (no PyTorch): the four steps of contention.py, minimum milliseconds of N runs.
For comparing two builds on a quiet machine, run it with each in turn, several times, alternating:

    for i in 1 2 3 4; do old-venv/bin/python bench/steps_alone.py; new-venv/bin/python bench/steps_alone.py; done
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnfast as rf


def steps():
    rng = np.random.default_rng(0)
    lstm = rf.LSTM(256, 256, num_layers=2, seed=0)
    x_train = rng.standard_normal((100, 64, 256)).astype(np.float32)

    def train_step():
        y, _ = lstm(x_train)
        lstm.backward(np.ones_like(y))

    infer_layer = rf.LSTM(512, 512, seed=0)
    infer_layer.eval()
    x_infer = rng.standard_normal((100, 64, 512)).astype(np.float32)
    small = rf.LanguageModel(65, 128, 512, num_layers=2, seed=0)
    large = rf.LanguageModel(10000, 512, 512, num_layers=2, seed=0)
    return {
        "lstm 2x256 train step": train_step,
        "lstm 512 B=64 inference": lambda: infer_layer(x_infer),
        "generation 2x512 vocab 65": lambda: small.generate([1, 2, 3], 200, seed=1),
        "generation 2x512 vocab 10k": lambda: large.generate([1, 2, 3], 200, seed=1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    rf.set_num_threads(args.threads)
    cells = []
    for name, fn in steps().items():
        fn()
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        cells.append(f"{name} {min(times):.1f} ms")
    print(f"rnnfast {rf.__version__} ({rf.__file__}): " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
