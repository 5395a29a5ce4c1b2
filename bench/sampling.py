"""What sampling costs per generated token, on top of the model's own step.

A 2-layer LSTM language model whose head weights are zero and whose head bias holds Zipf-distributed log-probabilities
(the shape of a word-level model's next-token distribution: frequency ~ 1 / rank**s), so every setting samples
from the same known distribution while the whole model still runs. Greedy decoding is the baseline: the model's
step plus an argmax. Each other row's overhead is its time per token minus greedy's.

    python bench/sampling.py --vocab 10000
    python bench/sampling.py --vocab 65 --hidden 512 --embed 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import rnnfast as rf

SETTINGS = [
    ("greedy", {"temperature": 0.0}),
    ("plain", {"temperature": 1.0}),
    ("top_k=40", {"top_k": 40}),
    ("top_p=0.9", {"top_p": 0.9}),
    ("top_p=0.95, temperature 0.8", {"top_p": 0.95, "temperature": 0.8}),
]


def zipf_model(vocab: int, embed: int, hidden: int, layers: int, exponent: float) -> rf.LanguageModel:
    model = rf.LanguageModel(vocab, embed, hidden, num_layers=layers, seed=0).eval()
    params = model.named_parameters()
    params["head.weight"][...] = 0.0
    ranks = np.random.default_rng(0).permutation(vocab) + 1
    params["head.bias"][...] = -exponent * np.log(ranks)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--embed", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--zipf", type=float, default=1.1, help="exponent s of the next-token distribution")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weight-dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args(argv)
    rf.set_num_threads(args.threads)
    model = zipf_model(args.vocab, args.embed, args.hidden, args.layers, args.zipf)

    def run(kwargs: dict) -> float:
        start = time.perf_counter()
        model.generate([1], args.tokens, seed=0, weight_dtype=args.weight_dtype, **kwargs)
        return (time.perf_counter() - start) / args.tokens * 1e6

    times = {name: [] for name, _ in SETTINGS}
    for _ in range(args.reps + 1):  # interleaved, the first round a warm-up
        for name, kwargs in SETTINGS:
            times[name].append(run(kwargs))
    median = {name: statistics.median(values[1:]) for name, values in times.items()}
    print(
        f"vocab {args.vocab}, lstm {args.layers}x{args.hidden}, embed {args.embed}, Zipf s={args.zipf}, "
        f"{args.weight_dtype} weights, {args.threads} threads, median of {args.reps} x {args.tokens} tokens\n"
    )
    print("| setting | us per token | tokens/s | sampling overhead (us per token) |")
    print("|---|---:|---:|---:|")
    for name, us in median.items():
        overhead = "baseline" if name == "greedy" else f"{us - median['greedy']:.1f}"
        print(f"| {name} | {us:.1f} | {1e6 / us:.0f} | {overhead} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
