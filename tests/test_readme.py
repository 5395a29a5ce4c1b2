"""README.md's examples, run as the README writes them.

- Every ```python block is executed as it stands, in a fresh namespace and an empty working directory (one test
  per block; tracebacks point at README.md's own lines).
- Every command of the ```bash blocks is taken from the README text (continuation lines joined, comments
  dropped, ``&&`` chains split). Commands that set up an environment (venv, pip, pytest) are recognised by
  ``NOT_RUN`` and not run, each with its reason; every other command must be an ``rnnfast`` command (possibly
  launched by ``mpiexec -n N``, which needs mpi4py and mpiexec like tests/test_distributed.py), and each
  block's commands run in order, in an empty working directory, with the README's flags followed by
  ``LIMITS`` (a time limit, a small model, one thread: argparse keeps the last value of a flag). Each data file
  a command reads is a small stand-in written under the same relative path (``DATA``: the first lines of the
  shared datasets, or generated files); a file that an earlier command of the block writes is used as written.
- What the README says a command does is checked where it is checkable: exit code 0, the files ``train``
  writes and the keys of metrics.jsonl, the keys an ``eval`` comment lists, a sample after its prime, the
  format of ``predict``'s output, a token file from ``prepare``, a clear refusal of bfloat16 products where the
  CPU has none.

A bash command that is neither run nor listed in ``NOT_RUN``, or that reads a file with no stand-in, fails
``test_every_bash_command_is_run_or_not_run_for_a_reason``: a new example needs its test data here.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import rnnfast as rf
from rnnfast.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_TEST_COMMAND = 'pip install ".[test]" torch==2.13.0 && pytest'
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\b(.*?)-->")

# Commands of the bash blocks that are not run, by their first words.
NOT_RUN = [
    (("python3", "-m", "venv"), "creates a virtual environment; these tests run in one that has rnnfast installed"),
    ((".",), "activates that virtual environment"),
    (("pip", "install"), "installs packages; these tests exercise the installed build already"),
    (("pytest",), "runs the test suite, this file included"),
    (("pip", "wheel"), "builds a wheel: tests/test_wheel.py builds, repairs and installs one the same way"),
    (("auditwheel", "repair"), "bundles the OpenMP runtime into that wheel: tests/test_wheel.py does it too"),
    (("mpiexec", "-hosts"), "needs other machines; tests/test_distributed.py runs several ranks on this one"),
    (("mpiexec", "-f"), "reads a hostfile of other machines; tests/test_distributed.py runs ranks on this one"),
]

# Appended to the README's flags: argparse takes the last value, so these bound the time and size only.
LIMITS = {
    "train": [
        "--minutes",
        "0.02",
        "--embed",
        "16",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ],
    "sample": ["--threads", "1"],
    "eval": ["--threads", "1"],
    "predict": ["--threads", "1"],
    "prepare": [],
    "export": [],
}
TIMEOUT_S = 120


# ----- the README, parsed ----------------------------------------------------------------------------------
@dataclass
class Block:
    index: int
    lang: str
    heading: str
    line: int  # README line of the block's first code line (1-based)
    code: str
    skip: str | None  # the reason of a <!-- readme-test: skip ... --> marker just above it

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"{self.index}-{self.lang}-{slug}"


@dataclass
class Command:
    block: Block
    line: int
    text: str  # the command as written, continuation lines joined, comment included
    argv: list[str]  # without the launcher
    comment: str
    launcher: list[str]  # "mpiexec -n N", or nothing

    @property
    def words(self) -> list[str]:
        return [*self.launcher, *self.argv]

    @property
    def where(self) -> str:
        return f"README.md:{self.line}: {' '.join(self.words)}"


def split_launcher(words: list[str]) -> tuple[list[str], list[str]]:
    """(launcher, command) of ``mpiexec -n N command...``; ([], words) for anything else."""
    if words[:2] == ["mpiexec", "-n"] and len(words) > 3:
        return words[:3], words[3:]
    return [], words


def readme_blocks(text: str) -> list[Block]:
    blocks, heading, lines, i = [], "", text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            start, i = i + 1, i + 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            assert i < len(lines), f"README.md:{start}: a code block that is never closed"
            previous = next((lines[k] for k in range(start - 2, -1, -1) if lines[k].strip()), "")
            marker = SKIP_MARKER.search(previous)
            skip = None
            if marker:
                skip = marker.group(1).strip()
                assert skip, f"README.md:{start - 1}: a readme-test skip marker needs a reason"
            blocks.append(
                Block(len(blocks), fence.group(1), heading, start + 1, "\n".join(lines[start:i]) + "\n", skip)
            )
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
        i += 1
    return blocks


def block_commands(block: Block) -> list[Command]:
    """The commands of a bash block: continuation lines joined, ``&&`` chains split. A command's comment is its
    own trailing one and the comment lines just above it."""
    out, lines, i, above = [], block.code.splitlines(), 0, ""
    while i < len(lines):
        first, text = i, lines[i]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        i += 1
        if not text.strip():
            continue
        if text.lstrip().startswith("#"):
            above += text.strip() + "\n"
            continue
        words = shlex.split(text, comments=True)
        comment = above + (text[len(text.split(" #", 1)[0]) :] if " #" in text else "")
        above = ""
        part: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if part:
                    launcher, argv = split_launcher(part)
                    out.append(Command(block, block.line + first, text, argv, comment, launcher))
                part = []
            else:
                part.append(word)
    return out


def not_run_reason(command: Command) -> str | None:
    if command.block.skip:
        return command.block.skip
    for prefix, reason in NOT_RUN:
        if tuple(command.words[: len(prefix)]) == prefix:
            return reason
    return None


README_TEXT = README.read_text(encoding="utf-8")
BLOCKS = readme_blocks(README_TEXT)
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]
BASH_BLOCKS = [b for b in BLOCKS if b.lang in ("bash", "sh", "shell", "console")]


# ----- stand-ins for the data files the commands read -------------------------------------------------------
def shared_lines(shared: Path, name: str, start: int, stop: int) -> str:
    with open(shared / name, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    return "".join(lines[start:stop])


def held_out_text(shared: Path, root: Path) -> str:
    """Lines after input.txt's slice, made only of characters the model of input.txt knows."""
    known = set((root / "input.txt").read_text(encoding="utf-8"))
    lines = shared_lines(shared, "tinyshakespeare.txt", 2000, 2400).splitlines(keepends=True)
    return "".join(line for line in lines if set(line) <= known)


REVIEW_WORDS = {"pos": "good great wonderful moving fun".split(), "neg": "bad dull boring long awful".split()}
FILLER = "the a film movie plot actors story was is very quite and but so".split()


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = "pos" if rng.random() < 0.5 else "neg"
        words = [*rng.choice(FILLER, rng.integers(3, 9)), rng.choice(REVIEW_WORDS[label])]
        rng.shuffle(words)
        out.append((label, " ".join(words).capitalize() + "."))
    return out


def conll(n: int, seed: int) -> str:
    """Sentences of word, part of speech and chunk tag: NP VP NP [PP NP] '.'."""
    rng = np.random.default_rng(seed)

    def noun_phrase():
        words = [(rng.choice(["The", "a"]), "DT")] + [
            (rng.choice(["big", "old"]), "JJ") for _ in range(rng.integers(0, 3))
        ]
        words.append((rng.choice(["dog", "park", "run", "walk", "idea"]), "NN"))
        return [(w, p, "B-NP" if k == 0 else "I-NP") for k, (w, p) in enumerate(words)]

    text = ""
    for _ in range(n):
        s = noun_phrase() + [(rng.choice(["sees", "likes", "walks"]), "VB", "B-VP")] + noun_phrase()
        if rng.random() < 0.5:
            s += [("near", "IN", "B-PP")] + noun_phrase()
        text += "".join(f"{w} {p} {t}\n" for w, p, t in s + [(".", ".", "O")]) + "\n"
    return text


def tones(per_class: int, seed: int) -> dict[str, bytes]:
    """A folder per class ("low", "high") of short 22.05 kHz 16-bit .wav tones, as {relative path: bytes}."""
    import io
    import wave

    rng = np.random.default_rng(seed)
    files = {}
    for label, frequency in (("low", 300.0), ("high", 2500.0)):
        for k in range(per_class):
            t = np.arange(int(22050 * rng.uniform(0.1, 0.2))) / 22050
            samples = 0.5 * np.sin(2 * np.pi * frequency * rng.uniform(0.9, 1.1) * t)
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(22050)
                f.writeframes((samples * 32767).astype("<i2").tobytes())
            files[f"{label}/{k}.wav"] = buffer.getvalue()
    return files


@dataclass
class StandIn:
    write: object  # (shared data folder or None, working directory) -> file contents, or {path: bytes} (a folder)
    shared: bool = False  # needs ../shared/data


DATA = {
    "input.txt": StandIn(lambda shared, root: shared_lines(shared, "tinyshakespeare.txt", 0, 2000), shared=True),
    "held_out.txt": StandIn(held_out_text, shared=True),
    "ptb/ptb.train.txt": StandIn(lambda shared, root: shared_lines(shared, "ptb/ptb.train.txt", 0, 1000), shared=True),
    "ptb/ptb.valid.txt": StandIn(lambda shared, root: shared_lines(shared, "ptb/ptb.valid.txt", 0, 100), shared=True),
    "ptb/ptb.test.txt": StandIn(lambda shared, root: shared_lines(shared, "ptb/ptb.test.txt", 0, 100), shared=True),
    "corpus.txt": StandIn(lambda shared, root: shared_lines(shared, "ptb/ptb.train.txt", 1000, 2000), shared=True),
    "co2.csv": StandIn(lambda shared, root: shared_lines(shared, "timeseries/co2.csv", 0, 800), shared=True),
    "reviews.tsv": StandIn(lambda shared, root: "".join(f"{label}\t{text}\n" for label, text in reviews(200, 0))),
    "new_reviews.txt": StandIn(lambda shared, root: "".join(f"{text}\n" for _, text in reviews(20, 1))),
    "train.txt": StandIn(lambda shared, root: conll(150, 0)),
    "dev.txt": StandIn(lambda shared, root: conll(30, 1)),
    "test.txt": StandIn(lambda shared, root: conll(30, 2)),
    # The header (5 lines) and the first series of the archive's files.
    "GunPoint_TRAIN.ts": StandIn(lambda shared, root: shared_lines(shared, "uea/GunPoint_TRAIN.ts", 0, 40), True),
    "GunPoint_TEST.ts": StandIn(lambda shared, root: shared_lines(shared, "uea/GunPoint_TEST.ts", 0, 30), True),
    "words/train": StandIn(lambda shared, root: tones(6, 0)),
    "words/test": StandIn(lambda shared, root: tones(3, 1)),
}


# ----- what each rnnfast command reads and writes -------------------------------------------------------------
def parse(command: Command):
    try:
        return build_parser().parse_args(command.argv[1:])
    except SystemExit:
        pytest.fail(f"{command.where}: rnnfast does not accept these arguments")


def as_list(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def inputs_of(args) -> list[str]:
    if args.command == "train":
        return as_list(args.data) + as_list(args.val_data) + as_list(args.test_data)
    if args.command in ("sample", "eval", "predict"):
        return [args.checkpoint, *as_list(getattr(args, "data", None))]
    if args.command == "prepare":
        return [args.text]
    if args.command == "export":
        return [args.checkpoint]
    raise AssertionError(f"rnnfast {args.command}: add what it reads and writes to tests/test_readme.py")


def train_out(args) -> str:
    return args.out or os.path.join("runs", Path(args.data[0]).stem if args.data else "stdlib-docstrings")


def outputs_of(args) -> list[str]:
    if args.command == "train":
        out = train_out(args)
        return [out, *(os.path.join(out, f) for f in ("model.rnnfast", "last.rnnfast", "metrics.jsonl"))]
    if args.command in ("predict", "prepare", "export"):
        return as_list(args.out)
    return []


def bf16_refused(args) -> bool:
    """A train command that asks for bfloat16 products on a CPU without them: the README says it is refused."""
    return args.command == "train" and args.matmul_precision == "bfloat16" and rf.build_info()["bf16_products"] is None


def uncovered(block: Block) -> list[str]:
    """Why commands of ``block`` would not be run: neither in NOT_RUN nor an rnnfast command whose inputs all
    exist when it runs."""
    problems, written = [], set()
    for command in block_commands(block):
        if not_run_reason(command):
            continue
        if command.argv[0] != "rnnfast":
            problems.append(f"{command.where}: neither an rnnfast command nor in NOT_RUN")
            continue
        args = parse(command)
        for path in inputs_of(args):
            norm = os.path.normpath(path)
            if norm not in written and norm not in DATA:
                problems.append(
                    f"{command.where}: reads {path}, which no earlier command of its block writes "
                    "and DATA has no stand-in for"
                )
        if not bf16_refused(args):
            written.update(os.path.normpath(p) for p in outputs_of(args))
    return problems


# ----- running ----------------------------------------------------------------------------------------------
def rnnfast_executable() -> list[str]:
    """The ``rnnfast`` console script of this Python's environment (the README's command), else ``-m rnnfast``."""
    script = shutil.which("rnnfast", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "rnnfast"]


def run(command: Command, cwd: Path, extra: list[str], mpiexec: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    launcher = [mpiexec, *command.launcher[1:]] if command.launcher else []
    return subprocess.run(
        [*launcher, *rnnfast_executable(), *command.argv[1:], *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def listed_metric_keys() -> set[str]:
    """The keys README.md lists for a language model's metrics.jsonl records."""
    match = re.search(r"one JSON\s+object per evaluation:\s+`([^`]+)`", README_TEXT)
    assert match, "README.md no longer lists the keys of metrics.jsonl"
    return {k.strip() for k in match.group(1).split(",")}


def check_train(command, args, result, cwd: Path) -> None:
    out = cwd / train_out(args)
    for name in ("model.rnnfast", "last.rnnfast", "metrics.jsonl"):
        assert (out / name).is_file(), f"{command.where}: wrote no {out / name}"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if not r.get("final")]
    assert evaluations, f"{command.where}: metrics.jsonl holds no evaluation"
    if args.task == "lm":
        assert set(evaluations[0]) == listed_metric_keys(), (command.where, sorted(evaluations[0]))
    if args.test_data:
        final = records[-1]
        assert final.get("final") is True and "test_loss" in final, (command.where, final)
        if args.task == "lm":
            assert final["test_ppl"] == pytest.approx(np.exp(final["test_loss"]))
    if args.task == "lm" and not args.data:  # the main job ends with a sample
        assert result.stdout.strip(), f"{command.where}: printed no sample"


def check_sample(command, args, result, cwd: Path) -> None:
    text = result.stdout
    assert text.strip(), f"{command.where}: printed nothing"
    assert text.startswith(args.prime or ""), (command.where, text[:80])
    if rf.load(cwd / args.checkpoint).tokenizer.kind == "char":
        assert len(text) == len(args.prime or "") + args.n + 1, (command.where, len(text))


def check_eval(command, args, result, cwd: Path) -> None:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, (command.where, result.stdout)
    metrics = json.loads(lines[0])
    promised = re.findall(r'"(\w+)":\s*\.\.\.', command.comment)
    assert set(promised) <= set(metrics), (command.where, sorted(metrics))
    for key in promised:
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]), (command.where, key, metrics[key])


def check_predict(command, args, result, cwd: Path) -> None:
    task = rf.load(cwd / args.checkpoint).extra["task"]["task"]
    written = (cwd / args.out).read_text(encoding="utf-8").splitlines() if args.out else result.stdout.splitlines()
    if task == "sequences":  # a CSV: id, label, one probability per class
        rows = list(csv.reader(written))
        classes = rf.load(cwd / args.checkpoint).extra["task"]["classes"]
        assert rows[0] == ["id", "label", *(f"p_{c}" for c in classes)], (command.where, rows[0])
        assert len(rows) == 1 + len(rf.data.read_ts(cwd / args.data)), command.where
        return
    given = (cwd / args.data).read_text(encoding="utf-8").splitlines()
    if task == "classify":  # one label per text line
        assert len(written) == len(given) and all(written), command.where
    elif task == "tag":  # the input with one more column
        assert len(written) == len(given), command.where
        for a, b in zip(given, written):
            assert (b.split() == []) if a.split() == [] else (b.split()[:-1] == a.split()), (command.where, a, b)
    elif task == "forecast":  # a CSV of the next --steps values
        rows = list(csv.reader(written))
        settings = rf.load(cwd / args.checkpoint).extra["task"]
        assert rows[0] == [settings["date_column"] or "step", settings["column"][0]], (command.where, rows[0])
        assert len(rows) == 1 + (args.steps or settings["horizon"]), command.where
        assert all(np.isfinite(float(value)) for _, value in rows[1:]), command.where
    else:
        raise AssertionError(f"{command.where}: a {task} checkpoint has no predict check here")


def check_prepare(command, args, result, cwd: Path) -> None:
    from rnnfast.tasks.lm import is_token_file

    assert is_token_file(cwd / args.out), f"{command.where}: {args.out} is not a token file"


def check_export(command, args, result, cwd: Path) -> None:
    """The JSON line the README's comment promises, and a graph that onnxruntime opens."""
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    promised = re.findall(r'"(\w+)":\s*\.\.\.|"(\w+)":\s*\[', command.comment)
    assert {a or b for a, b in promised} <= set(printed), (command.where, sorted(printed))
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(cwd / args.out), options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()][0] == "input_ids", command.where


CHECKS = {
    "train": check_train,
    "sample": check_sample,
    "eval": check_eval,
    "predict": check_predict,
    "prepare": check_prepare,
    "export": check_export,
}


# ----- tests ------------------------------------------------------------------------------------------------
def test_the_readme_has_examples_of_both_kinds():
    assert PYTHON_BLOCKS and BASH_BLOCKS
    assert {b.lang for b in BLOCKS} <= {"python", "bash", "text", ""}, "a code block of a language not tested here"


def test_quick_start_is_the_main_job_and_the_ci_test_command():
    first, second = (block_commands(b) for b in BASH_BLOCKS[:2])
    assert [c.argv[:2] for c in first][-1] == ["rnnfast", "train"], "the first command block runs the main job"
    assert CI_TEST_COMMAND in second[0].text, "the second command block is the tests' command, as CI runs it"
    ci = ROOT / ".ci" / "run"
    if ci.is_file():
        assert CI_TEST_COMMAND in ci.read_text(), ".ci/run no longer runs the README's test command"


def test_every_bash_command_is_run_or_not_run_for_a_reason():
    problems = [p for block in BASH_BLOCKS for p in uncovered(block)]
    assert not problems, "\n".join(problems)
    used = {
        prefix
        for prefix, _ in NOT_RUN
        for b in BASH_BLOCKS
        for c in block_commands(b)
        if tuple(c.words[: len(prefix)]) == prefix
    }
    assert used == {prefix for prefix, _ in NOT_RUN}, "NOT_RUN lists commands the README no longer has"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_block(block, tmp_path, monkeypatch, capsys, one_thread):
    if block.skip:
        pytest.skip(block.skip)
    monkeypatch.chdir(tmp_path)
    code = compile("\n" * (block.line - 1) + block.code, str(README), "exec")  # README's line numbers
    exec(code, {"__name__": "__readme__"})
    if "print(" in block.code:
        assert capsys.readouterr().out.strip(), f"README.md:{block.line}: the block printed nothing"


@pytest.mark.parametrize("block", BASH_BLOCKS, ids=[b.id for b in BASH_BLOCKS])
def test_bash_block(block, tmp_path, request):
    commands = block_commands(block)
    runnable = [c for c in commands if not not_run_reason(c)]
    if not runnable:
        pytest.skip("; ".join(sorted({f"{c.argv[0]}: {not_run_reason(c)}" for c in commands})))
    problems = uncovered(block)
    assert not problems, "\n".join(problems)
    for command in runnable:
        args = parse(command)
        for path in inputs_of(args):
            target = tmp_path / path
            if not target.exists():
                stand_in = DATA[os.path.normpath(path)]
                shared = request.getfixturevalue("shared_data") if stand_in.shared else None
                contents = stand_in.write(shared, tmp_path)
                if isinstance(contents, dict):  # a folder of files
                    for name, data in contents.items():
                        (target / name).parent.mkdir(parents=True, exist_ok=True)
                        (target / name).write_bytes(data)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(contents, encoding="utf-8")
        mpiexec = request.getfixturevalue("mpiexec") if command.launcher else None
        result = run(command, tmp_path, LIMITS[args.command], mpiexec)
        if bf16_refused(args):
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2 and len(lines) == 1 and "bfloat16" in lines[0], (command.where, result.stderr)
            continue
        assert result.returncode == 0, f"{command.where}\nexit {result.returncode}\n{result.stderr[-3000:]}"
        CHECKS[args.command](command, args, result, tmp_path)
