"""Train and test accuracy of `rnnfast train --task classify --format ts` on UCR/UEA datasets, next to the archive's
published 1-NN baselines (Euclidean distance and DTW).

Every run is the plain command line a user types, one process per (dataset, setting, seed):

    rnnfast train --task classify --format ts --data X_TRAIN.ts --test-data X_TEST.ts --seed S --threads 1 \\
        --no-progress --out OUT/X/SETTING/seed-S [SETTING's flags]

followed by `rnnfast eval OUT/.../model.rnnfast --data X_TRAIN.ts` (train accuracy) and `--data X_TEST.ts` (test
accuracy; the same number the training run prints at its end). model.rnnfast is the checkpoint with the best
validation accuracy on the 10% of the training file that `rnnfast train` holds out (the first epoch reaching it),
so "train" is the accuracy on the whole training file, those 10% included. Runs go --jobs at a time, each with
one thread.

    python bench/ucr.py --out runs/ucr                                  # defaults, seeds 1 2 3, all four sets
    python bench/ucr.py --settings default,gru,bigru64 --seeds 1 2 3 --json ucr.json
    python bench/ucr.py --datasets GunPoint --settings default --seeds 1 --quick   # smoke run (5 epochs)
    python bench/ucr.py --report a.json b.json                          # one table of earlier runs

Settings are fixed here once for every dataset; they were not tuned per dataset, and never on the test files.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "uea"
DATASETS = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf")
# Test accuracy of 1-NN with Euclidean distance / with DTW, from the UCR archive (../shared/data/README.md).
ONE_NN = {
    "GunPoint": (0.913, 0.907),
    "ArrowHead": (0.800, 0.703),
    "ItalyPowerDemand": (0.955, 0.950),
    "OSULeaf": (0.521, 0.591),
}
# name -> extra flags of `rnnfast train`; "default" is the package's own defaults for --format ts
# (LSTM, hidden 128, mean pooling, Adam lr 2e-3, batch 16, 100 epochs).
# The two others were picked once for all four sets, from the training loss alone (GunPoint and ArrowHead, seed
# 1, no test file): with the defaults the LSTM's training loss stays near log(classes) for 100 epochs; --lr 0.01,
# alone or with --batch-size 4, --pooling last or --bidirectional, changed that little; a GRU's fell.
SETTINGS = {
    "default": [],
    "gru": ["--cell", "gru"],
    "bigru64": ["--cell", "gru", "--hidden", "64", "--bidirectional"],
}


def run_one(dataset: str, setting: str, seed: int, args) -> dict:
    train_file = args.data_dir / f"{dataset}_TRAIN.ts"
    test_file = args.data_dir / f"{dataset}_TEST.ts"
    out = args.out / dataset / setting / f"seed-{seed}"
    rnnfast = [sys.executable, "-m", "rnnfast"]
    train = [
        *rnnfast,
        "train",
        "--task",
        "classify",
        "--format",
        "ts",
        "--data",
        str(train_file),
        "--test-data",
        str(test_file),
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
        *SETTINGS[setting],
        *(["--epochs", "5"] if args.quick else []),
    ]
    start = time.perf_counter()
    done = subprocess.run(train, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {
            "dataset": dataset,
            "setting": setting,
            "seed": seed,
            "error": done.stderr[-2000:],
            "command": shlex.join(train),
        }
    accuracy = {}
    for part, path in (("train", train_file), ("test", test_file)):
        evaluated = subprocess.run(
            [*rnnfast, "eval", str(out / "model.rnnfast"), "--data", str(path), "--threads", "1"],
            capture_output=True,
            text=True,
        )
        if evaluated.returncode != 0:
            return {
                "dataset": dataset,
                "setting": setting,
                "seed": seed,
                "error": evaluated.stderr[-2000:],
                "command": shlex.join(evaluated.args),
            }
        accuracy[part] = json.loads(evaluated.stdout)["accuracy"]
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"final"' in line]
    epochs = max(
        (json.loads(line).get("epoch", 0) for line in (out / "metrics.jsonl").read_text().splitlines()), default=0
    )
    return {
        "dataset": dataset,
        "setting": setting,
        "seed": seed,
        "train_accuracy": accuracy["train"],
        "test_accuracy": accuracy["test"],
        "printed_test_accuracy": final[0]["test_accuracy"] if final else None,
        "epochs": epochs,
        "seconds": seconds,
        "command": shlex.join(train),
    }


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def table(rows: list[dict], settings: list[str], datasets: list[str]) -> str:
    lines = [
        "| dataset | setting | seeds | train accuracy | test accuracy | 1-NN ED | 1-NN DTW | s/run |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset in datasets:
        for setting in settings:
            got = [r for r in rows if r["dataset"] == dataset and r["setting"] == setting and "error" not in r]
            if not got:
                lines.append(f"| {dataset} | {setting} | 0 | failed | failed | | | |")
                continue
            ed, dtw = ONE_NN.get(dataset, (float("nan"), float("nan")))
            lines.append(
                f"| {dataset} | {setting} | {len(got)} | {spread([r['train_accuracy'] for r in got])} | "
                f"{spread([r['test_accuracy'] for r in got])} | {ed:.3f} | {dtw:.3f} | "
                f"{statistics.median([r['seconds'] for r in got]):.0f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help=f"folder of X_TRAIN.ts, X_TEST.ts (default {DATA_DIR})"
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated (default: the four)")
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help=f"comma-separated subset of {','.join(SETTINGS)} (default: all)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/ucr"), help="run folders (default runs/ucr)")
    parser.add_argument("--json", help="also write every run as JSON")
    parser.add_argument("--quick", action="store_true", help="5 epochs per run: a smoke test, not a result")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="train nothing: print the table of the runs in these --json files, together",
    )
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    settings = [s for s in args.settings.split(",") if s]
    if args.report:
        rows = [row for path in args.report for row in json.loads(path.read_text())]
        print(
            table(
                rows,
                [s for s in settings if any(r["setting"] == s for r in rows)],
                [d for d in datasets if any(r["dataset"] == d for r in rows)],
            )
        )
        return 0
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {','.join(unknown)}, expected a subset of {','.join(SETTINGS)}")
    for setting in settings:
        print(
            f"# {setting}: rnnfast train --task classify --format ts --data X_TRAIN.ts --test-data X_TEST.ts "
            f"--seed S --threads 1 {shlex.join(SETTINGS[setting])}".rstrip(),
            flush=True,
        )

    # The longest runs (OSULeaf, then ArrowHead) first, so the two workers finish close together.
    jobs = [(d, s, seed) for d in reversed(datasets) for s in settings for seed in args.seeds]
    rows = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(lambda job: run_one(*job, args), jobs):
            rows.append(row)
            if "error" in row:
                print(
                    f"FAILED {row['dataset']} {row['setting']} seed {row['seed']}: {row['command']}\n{row['error']}",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print(
                    f"{row['dataset']:<17} {row['setting']:<8} seed {row['seed']}: train {row['train_accuracy']:.3f} "
                    f"test {row['test_accuracy']:.3f} ({row['epochs']} epochs, {row['seconds']:.0f} s)",
                    flush=True,
                )
    print()
    print(table(rows, settings, datasets))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
        print(f"\n# wrote {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
