"""What int8 weights cost in quality: ``rnnfast eval`` of one checkpoint on one file with its float32 weights and
with ``--weight-dtype int8`` (model.quantize("int8")), and the change of every metric.

    python bench/int8_quality.py compare runs/ts/model.rnnfast --data held_out.txt [rnnfast eval options]
    python bench/int8_quality.py segmentation-data ../shared/data/tinyshakespeare.txt runs/seg-data

``segmentation-data`` writes a chunking task built from real text, for a tagger's chunk F1 where no chunking
corpus is at hand: each line of the text with its spaces removed, one character per CoNLL line, tagged B-W / I-W
inside words (letters and apostrophes) and O elsewhere, so that chunk F1 is the F1 of the recovered words. The
first 90% of the lines go to train.conll, the rest to test.conll.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from pathlib import Path

from rnnfast.cli import main as rnnfast_main


def evaluate(checkpoint: str, extra: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = rnnfast_main(["eval", checkpoint, *extra])
    if code != 0:
        raise SystemExit(f"rnnfast eval {checkpoint} {' '.join(extra)} exited with {code}")
    return json.loads(out.getvalue())


def compare(args) -> None:
    extra = ["--data", *args.data, *args.eval_args]
    float32 = evaluate(args.checkpoint, extra)
    int8 = evaluate(args.checkpoint, [*extra, "--weight-dtype", "int8"])
    change = {k: int8[k] - v for k, v in float32.items() if isinstance(v, (int, float)) and int8.get(k) is not None}
    print(json.dumps({"checkpoint": args.checkpoint, "float32": float32, "int8": int8, "change": change}))


def segmentation_data(args) -> None:
    lines = [line.strip() for line in Path(args.text).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if len(line.split()) >= 2]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = int(len(lines) * 0.9)
    for name, part in (("train.conll", lines[:split]), ("test.conll", lines[split:])):
        with open(out / name, "w", encoding="utf-8") as f:
            for line in part:
                for token in line.split():
                    for match in re.finditer(r"[A-Za-z']+|[^A-Za-z']", token):
                        word = match.group()
                        if len(word) > 1 or word.isalpha() or word == "'":
                            f.writelines(f"{ch} {'B-W' if k == 0 else 'I-W'}\n" for k, ch in enumerate(word))
                        else:
                            f.write(f"{word} O\n")
                f.write("\n")
    print(f"wrote {out}/train.conll ({split} lines) and {out}/test.conll ({len(lines) - split} lines)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="rnnfast eval in float32 and int8, and the change")
    c.add_argument("checkpoint")
    c.add_argument("--data", nargs="+", required=True)
    s = sub.add_parser("segmentation-data", help="a word-segmentation chunking task from a text file")
    s.add_argument("text")
    s.add_argument("out")
    # Options compare does not know (--seq-len, --batch-size, ...) go to rnnfast eval as they are.
    args, args.eval_args = parser.parse_known_args()
    if args.command == "compare":
        compare(args)
    else:
        segmentation_data(args)


if __name__ == "__main__":
    main()
