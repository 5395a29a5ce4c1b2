"""Spoken digits from .wav files, end to end: a small spoken-digit set synthesised with espeak-ng, then
`rnnfast train --task classify --format wav` on MFCCs and on log-mel energies, scored on unseen voices.

The set is made reproducibly (espeak-ng's output depends only on its version and arguments; the script writes
them to <out>/data/manifest.json, reuses the files when the manifest matches, and prints a SHA-256 of all
clips). Each clip is the word zero..nine spoken by one voice (an English accent and an espeak-ng voice variant,
e.g. ``en-us+f2``) at one speed (``-s``, words per minute) and pitch (``-p``, 0-99):

    <out>/data/<split>/<digit>/<voice>_<speed>_<pitch>.wav        (22,050 Hz, 16-bit mono, as espeak-ng writes)

Train and test share no voice variant, no speed and no pitch, so every test clip comes from a speaker (variant),
a speaking rate and a pitch that training never heard; the accents are shared. Then, for each feature kind:

    rnnfast train --task classify --format wav --data <out>/data/train --test-data <out>/data/test \\
        --features mfcc --seed S --threads T --no-progress --out <out>/mfcc-seed-S
    rnnfast eval <out>/mfcc-seed-S/model.rnnfast --data <out>/data/test

with --epochs 30 (the validation accuracy reaches 1.0 within about 10 epochs; the package default is 100) and the
clips at espeak-ng's 22,050 Hz; ``--sample-rate 16000`` passes that on to rnnfast train, which then resamples
every clip while reading it (slower than computing the features).

Needs espeak-ng on the PATH (Debian: apt-get install espeak-ng).

    python bench/spoken_digits.py                               # both feature kinds, seed 1, ~5-10 minutes
    python bench/spoken_digits.py --seeds 1 2 3 --json digits.json
    python bench/spoken_digits.py --quick                       # smoke run: fewer clips, 3 epochs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
# espeak-ng voice variants (!v/ in its data folder): each changes formants, pitch range, breathiness, ...
TRAIN_VARIANTS = ("m1", "m2", "m4", "m5", "m6", "m7", "f1", "f3", "f4", "klatt")
TEST_VARIANTS = ("m3", "f2", "f5", "klatt2")
TRAIN_SPEEDS, TEST_SPEEDS = (120, 150, 185), (135, 170)
TRAIN_PITCHES, TEST_PITCHES = (25, 45, 70), (35, 60)
CLIPS_PER_VOICE = 2  # (speed, pitch) pairs drawn per voice and digit, without replacement
SEED = 18  # of the draw above


def plan(quick: bool) -> list[tuple[str, str, str, int, int]]:
    """(split, digit, voice, speed, pitch) of every clip, in a fixed order."""
    rng = random.Random(SEED)
    clips = []
    for split, variants, speeds, pitches in (
        ("train", TRAIN_VARIANTS, TRAIN_SPEEDS, TRAIN_PITCHES),
        ("test", TEST_VARIANTS, TEST_SPEEDS, TEST_PITCHES),
    ):
        accents = ACCENTS[:2] if quick else ACCENTS
        variants = variants[:2] if quick else variants
        for accent in accents:
            for variant in variants:
                voice = f"{accent}+{variant}"
                for digit in range(10):
                    grid = [(s, p) for s in speeds for p in pitches]
                    for speed, pitch in rng.sample(grid, CLIPS_PER_VOICE):
                        clips.append((split, str(digit), voice, speed, pitch))
    return clips


def espeak_version() -> str:
    done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.split("Data at:")[0].strip()  # "eSpeak NG text-to-speech: 1.51", without the install path


def digest(data: Path, files: list[Path]) -> str:
    """SHA-256 over every clip's relative path and bytes, in path order: equal digests, equal data sets."""
    h = hashlib.sha256()
    for file in sorted(files):
        h.update(str(file.relative_to(data)).encode() + b"\0" + file.read_bytes())
    return h.hexdigest()


def generate(data: Path, quick: bool, jobs: int) -> dict:
    clips = plan(quick)
    manifest = {
        "espeak_ng": espeak_version(),
        "seed": SEED,
        "quick": quick,
        "clips": len(clips),
        "accents": ACCENTS,
        "train_variants": TRAIN_VARIANTS,
        "test_variants": TEST_VARIANTS,
        "train_speeds": TRAIN_SPEEDS,
        "test_speeds": TEST_SPEEDS,
        "train_pitches": TRAIN_PITCHES,
        "test_pitches": TEST_PITCHES,
        "clips_per_voice": CLIPS_PER_VOICE,
    }
    manifest = json.loads(json.dumps(manifest))  # tuples as lists, as read back
    path = data / "manifest.json"
    files = [data / split / digit / f"{voice}_{speed}_{pitch}.wav" for split, digit, voice, speed, pitch in clips]
    if path.exists() and json.loads(path.read_text()) == manifest and all(f.exists() for f in files):
        print(f"# reusing {len(files)} clips in {data} (manifest matches), sha256 {digest(data, files)}", flush=True)
        return manifest
    if data.exists():
        shutil.rmtree(data)
    start = time.perf_counter()

    def speak(item):
        (split, digit, voice, speed, pitch), file = item
        file.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(file), WORDS[int(digit)]],
            check=True,
            capture_output=True,
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(speak, zip(clips, files)))
    path.write_text(json.dumps(manifest, indent=1))
    counts = {split: sum(c[0] == split for c in clips) for split in ("train", "test")}
    print(
        f"# wrote {counts['train']} training and {counts['test']} test clips to {data} with {manifest['espeak_ng']} "
        f"in {time.perf_counter() - start:.0f} s, sha256 {digest(data, files)}",
        flush=True,
    )
    return manifest


def train_one(features: str, seed: int, args) -> dict:
    data = args.out / "data"
    out = args.out / f"{features}-seed-{seed}"
    rnnfast = [sys.executable, "-m", "rnnfast"]
    command = [
        *rnnfast,
        "train",
        "--task",
        "classify",
        "--format",
        "wav",
        "--data",
        str(data / "train"),
        "--test-data",
        str(data / "test"),
        "--features",
        features,
        *(["--sample-rate", str(args.sample_rate)] if args.sample_rate else []),
        "--seed",
        str(seed),
        "--threads",
        str(args.threads),
        "--no-progress",
        "--out",
        str(out),
        *(["--epochs", str(args.epochs)] if args.epochs else []),
        *args.extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    row = {"features": features, "seed": seed, "command": shlex.join(command), "seconds": seconds}
    if done.returncode != 0:
        return {**row, "error": done.stderr[-3000:]}
    evaluated = subprocess.run(
        [*rnnfast, "eval", str(out / "model.rnnfast"), "--data", str(data / "test"), "--threads", str(args.threads)],
        capture_output=True,
        text=True,
    )
    if evaluated.returncode != 0:
        return {**row, "error": evaluated.stderr[-3000:]}
    result = json.loads(evaluated.stdout)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = max((r.get("epoch", 0) for r in records), default=0)
    best_val = max((r.get("val_accuracy", 0.0) for r in records if "val_accuracy" in r), default=None)
    summary = next((line for line in done.stderr.splitlines() if "training sequences" in line), "")
    return {
        **row,
        "test_accuracy": result["accuracy"],
        "test_macro_f1": result["macro_f1"],
        "test_loss": result["loss"],
        "best_val_accuracy": best_val,
        "epochs": epochs,
        "classes": result["classes"],
        "confusion_matrix": result["confusion_matrix"],
        "summary": summary,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/spoken_digits"),
        help="data (in <out>/data) and runs (default runs/spoken_digits)",
    )
    parser.add_argument("--features", default="mfcc,logmel", help="comma-separated kinds (default mfcc,logmel)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=0,
        help="rnnfast train --sample-rate, e.g. 16000 "
        "(default 0: keep espeak-ng's 22,050 Hz; resampling costs more than the features)",
    )
    parser.add_argument(
        "--epochs", type=int, default=30, help="rnnfast train --epochs (default 30; 0: the package's default)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs (and espeak-ng processes) at a time (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="rnnfast --threads of each run (default 1)")
    parser.add_argument("--extra", default="", help="more flags for rnnfast train, e.g. '--hidden 64'")
    parser.add_argument("--json", help="also write every run (with its confusion matrix) as JSON")
    parser.add_argument("--quick", action="store_true", help="2 accents x 2 variants per split, 3 epochs: smoke run")
    args = parser.parse_args(argv)
    args.extra = shlex.split(args.extra)
    if args.quick:
        args.epochs = 3
    if shutil.which("espeak-ng") is None:
        sys.exit("spoken_digits.py needs espeak-ng on the PATH (Debian: apt-get install espeak-ng)")
    start = time.perf_counter()
    generate(args.out / "data", args.quick, args.jobs)

    jobs = [(f, seed) for seed in args.seeds for f in args.features.split(",") if f]
    rows = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(lambda job: train_one(*job, args), jobs):
            rows.append(row)
            if "error" in row:
                print(f"FAILED {row['command']}\n{row['error']}", file=sys.stderr, flush=True)
                continue
            print(
                f"{row['features']:<7} seed {row['seed']}: test accuracy {row['test_accuracy']:.3f} macro_f1 "
                f"{row['test_macro_f1']:.3f} (best validation accuracy {row['best_val_accuracy']:.3f}, "
                f"{row['epochs']} epochs, {row['seconds']:.0f} s)\n  {row['command']}\n  {row['summary']}",
                flush=True,
            )

    print("\n| features | seeds | test accuracy | test macro F1 | s/run |\n|---|---:|---:|---:|---:|")
    for features in dict.fromkeys(r["features"] for r in rows):
        got = [r for r in rows if r["features"] == features and "error" not in r]
        if not got:
            print(f"| {features} | 0 | failed | failed | |")
            continue
        acc = [r["test_accuracy"] for r in got]
        f1 = [r["test_macro_f1"] for r in got]
        fmt = lambda v: f"{v[0]:.3f}" if len(v) == 1 else f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"  # noqa: E731
        print(
            f"| {features} | {len(got)} | {fmt(acc)} | {fmt(f1)} | {statistics.median(r['seconds'] for r in got):.0f} |"
        )
    for row in rows:
        if "error" not in row:
            print(
                f"\n{row['features']} seed {row['seed']}, test confusion matrix (rows: true digit 0-9, columns: "
                "predicted):"
            )
            for i, counts in enumerate(row["confusion_matrix"]):
                print(f"  {row['classes'][i]:>2}: " + " ".join(f"{c:3d}" for c in counts))
    print(f"\n# total {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
        print(f"# wrote {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
