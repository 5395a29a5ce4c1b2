"""Which to deploy: rnnfast or its ONNX export in onnxruntime, same model, same threads.

Two rows: a language model's batch-1 token loop (greedy, the states fed back each token) against
``LanguageModel.generate``, and a sentence classifier's batch inference against ``SequenceClassifier.forward``.
Each side runs the same weights (checked: the first outputs agree to 1e-4 before anything is timed); times are
medians of interleaved repeats. Run: ``python bench/onnx_speed.py [--threads 2] [--reps 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import rnnfast as rf


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(name: str, ours, theirs, reps: int, unit: str, count: int) -> None:
    ours(), theirs()  # warm up both
    times = {"rnnfast": [], "onnxruntime": []}
    for _ in range(reps):
        times["rnnfast"].append(timed(ours))
        times["onnxruntime"].append(timed(theirs))
    a, b = statistics.median(times["rnnfast"]), statistics.median(times["onnxruntime"])
    print(f"| {name} | {count / a:,.0f} {unit} | {count / b:,.0f} {unit} | {b / a:.2f}x |")


def language_model(tmp: Path, threads: int, reps: int, vocab: int, steps: int) -> None:
    model = rf.LanguageModel(vocab, 128, 512, num_layers=2, seed=0)
    model.eval()
    rf.onnx.export(model, tmp / "lm.onnx")
    run = session(tmp / "lm.onnx", threads)
    prompt = np.array([1, 2, 3], dtype=np.int64)

    def onnx_loop():
        feed, out = {"input_ids": prompt[:, None]}, []
        for _ in range(steps):
            logits, h, c = run.run(["logits", "h_n", "c_n"], feed)
            out.append(int(logits[-1, 0].argmax()))
            feed = {"input_ids": np.array([[out[-1]]], dtype=np.int64), "h0": h, "c0": c}
        return out

    # The same greedy tokens first: the two sides compute the same model.
    assert onnx_loop() == model.generate(prompt, steps, temperature=0).tolist()
    compare(
        f"LM 2x512 LSTM, vocabulary {vocab}, batch-1 greedy tokens",
        lambda: model.generate(prompt, steps, temperature=0),
        onnx_loop,
        reps,
        "tokens/s",
        steps,
    )


def classifier(tmp: Path, threads: int, reps: int) -> None:
    model = rf.SequenceClassifier(4, vocab_size=10_000, embed_dim=128, hidden_size=256, bidirectional=True, seed=0)
    model.eval()
    rf.onnx.export(model, tmp / "classifier.onnx")
    run = session(tmp / "classifier.onnx", threads)
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 51, 64)
    inputs = rng.integers(1, 10_000, (50, 64)).astype(np.int64)
    feed = {"inputs": inputs, "lengths": lengths.astype(np.int64)}
    expected = model.predict_proba(inputs, lengths)
    np.testing.assert_allclose(run.run(["probabilities"], feed)[0], expected, atol=1e-4)
    compare(
        "classifier, BiLSTM 256, B=64, T<=50",
        lambda: model.forward(inputs, lengths),
        lambda: run.run(["probabilities"], feed),
        reps,
        "sequences/s",
        64,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    rf.set_num_threads(args.threads)
    print(
        f"rnnfast {rf.__version__} ({rf.build_info()['isa']}), onnxruntime {ort.__version__}, {args.threads} "
        "threads each"
    )
    print("| model | rnnfast | onnxruntime | rnnfast / onnxruntime |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for vocab in (65, 10_000):
            language_model(Path(tmp), args.threads, args.reps, vocab, args.steps)
        classifier(Path(tmp), args.threads, args.reps)


if __name__ == "__main__":
    main()
