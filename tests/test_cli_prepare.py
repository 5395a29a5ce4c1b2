"""``rnnfast prepare`` and language-model training from token files, end to end through the command line.

A token file must train exactly what its text trains: the same splits, weights, samples and evaluation, checked
against runs on the text file itself. Bad token files and arguments end as one line on stderr and exit code 2.
The slow test shows that training reads a token file from disk: its peak memory does not grow with the corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli_lm import SMALL, assert_usage_error, char_corpus, cli, ok, run_main

from rnnfast import io
from rnnfast.prepare import open_tokens
from rnnfast.text import CharTokenizer, WordTokenizer, read_text


def prepared(text_path: Path, out: Path, *options: str) -> dict:
    report = json.loads(ok(cli("prepare", text_path, out, *options, cwd=text_path.parent)).stdout)
    assert report["path"] == str(out)
    return report


def weights(checkpoint: Path) -> dict[str, np.ndarray]:
    return io.load(checkpoint).model.state_dict()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("prepare")
    (folder / "corpus.txt").write_text(char_corpus(), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def text_and_token_runs(corpus) -> dict[str, Path]:
    """The same training run on corpus.txt and on its token file: two epochs, the last tenth for validation."""
    prepared(corpus / "corpus.txt", corpus / "corpus.tokens")
    runs = {}
    for name, data in (("text", "corpus.txt"), ("tokens", "corpus.tokens")):
        runs[name] = corpus / f"run-{name}"
        ok(cli("train", "--data", data, *SMALL, "--epochs", "2", "--out", runs[name], cwd=corpus, timeout=120))
    return runs


def test_prepare_prints_what_it_wrote(corpus):
    text = read_text(corpus / "corpus.txt")
    report = prepared(corpus / "corpus.txt", corpus / "printed.tokens")
    tokenizer = CharTokenizer.fit(text)
    assert report == {
        "path": str(corpus / "printed.tokens"),
        "count": len(text),
        "vocab_size": tokenizer.vocab_size,
        "dtype": "uint8",
        "level": "char",
    }
    ids, stored = open_tokens(corpus / "printed.tokens")
    assert stored == tokenizer
    np.testing.assert_array_equal(ids, tokenizer.encode(text))


def test_word_level_prepare_limits_the_vocabulary(corpus):
    report = prepared(corpus / "corpus.txt", corpus / "words.tokens", "--level", "word", "--max-vocab", "8")
    text = read_text(corpus / "corpus.txt")
    expected = WordTokenizer.fit(text, max_vocab=8)
    assert report["level"] == "word" and report["vocab_size"] == 8 and report["count"] == len(expected.encode(text))
    ids, tokenizer = open_tokens(corpus / "words.tokens")
    assert tokenizer == expected
    np.testing.assert_array_equal(ids, expected.encode(text))


def test_training_on_the_token_file_is_training_on_the_text(text_and_token_runs):
    """Same tokenizer, same validation split, same batches: bit-identical checkpoints and validation losses."""
    runs = text_and_token_runs
    for name in ("model.rnnfast", "last.rnnfast"):
        from_text, from_tokens = weights(runs["text"] / name), weights(runs["tokens"] / name)
        assert from_text.keys() == from_tokens.keys()
        for key in from_text:
            np.testing.assert_array_equal(from_tokens[key], from_text[key], err_msg=f"{name} {key}")
    assert io.load(runs["tokens"] / "model.rnnfast").tokenizer == io.load(runs["text"] / "model.rnnfast").tokenizer

    def val_losses(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["val_loss"] for line in lines if line.strip()]

    assert val_losses(runs["tokens"]) == val_losses(runs["text"]) and len(val_losses(runs["text"])) == 2


def test_sample_and_eval_of_a_token_file_run(corpus, text_and_token_runs):
    runs = text_and_token_runs
    samples = [
        ok(cli("sample", runs[name] / "model.rnnfast", "-n", "60", "--seed", "3", "--threads", "1", cwd=corpus)).stdout
        for name in ("text", "tokens")
    ]
    assert samples[0] == samples[1]
    assert set(samples[1]) <= set(char_corpus()) | {"\n"}
    evaluations = [
        json.loads(
            ok(cli("eval", runs["tokens"] / "model.rnnfast", "--data", data, "--threads", "1", cwd=corpus)).stdout
        )
        for data in ("corpus.txt", "corpus.tokens")
    ]
    assert evaluations[0] == evaluations[1]  # the token file holds exactly the ids of the text


def test_word_level_token_file_with_text_validation(corpus):
    """Validation from a text file, encoded with the token file's tokenizer; eval reads text and tokens alike."""
    text = char_corpus()
    (corpus / "words-train.txt").write_text(text * 2, encoding="utf-8")
    (corpus / "words-val.txt").write_text(text[: len(text) // 2], encoding="utf-8")
    prepared(corpus / "words-train.txt", corpus / "words-train.tokens", "--level", "word")
    run = corpus / "run-words"
    ok(
        cli(
            "train",
            "--data",
            "words-train.tokens",
            "--val-data",
            "words-val.txt",
            *SMALL,
            "--epochs",
            "1",
            "--out",
            run,
            cwd=corpus,
            timeout=120,
        )
    )
    checkpoint = io.load(run / "model.rnnfast")
    assert checkpoint.tokenizer == WordTokenizer.fit(text * 2)
    assert checkpoint.extra["task"]["level"] == "word"
    evaluations = [
        json.loads(ok(cli("eval", run / "model.rnnfast", "--data", data, "--threads", "1", cwd=corpus)).stdout)
        for data in ("words-train.txt", "words-train.tokens")
    ]
    assert evaluations[0] == evaluations[1]


def test_validation_fraction_of_a_word_token_file_ends_training_at_a_line_break(corpus):
    """--val-fraction takes the end of the memory map as a view, and at word level moves the cut back to just after
    the last <eos> before it, as the text path moves it to just after a newline."""
    from rnnfast.cli import build_parser
    from rnnfast.tasks.lm import load_token_file

    path = corpus / "lines.tokens"
    prepared(corpus / "corpus.txt", path, "--level", "word")
    ids, tokenizer = open_tokens(path)
    args = build_parser().parse_args(["train", "--val-fraction", "0.3"])
    args.data = str(path)  # cmd_train's reading of --data for a language model: one file
    loaded, splits = load_token_file(args)
    assert loaded == tokenizer
    eos = [i for i, token in enumerate(ids.tolist()) if token == tokenizer.eos_id]
    cut = max(i for i in eos if i < int(len(ids) * 0.7)) + 1
    np.testing.assert_array_equal(splits["train"], ids[:cut])
    np.testing.assert_array_equal(splits["val"], ids[cut:])
    assert isinstance(splits["train"], np.memmap) and isinstance(splits["val"], np.memmap)


def corrupted(corpus: Path, name: str, damage) -> Path:
    raw = bytearray((corpus / "corpus.tokens").read_bytes())
    path = corpus / name
    path.write_bytes(damage(raw))
    return path


def _flip_an_id(raw: bytearray) -> bytearray:
    raw[len(raw) - 32 - 10] ^= 0x01
    return raw


@pytest.mark.parametrize(
    "name, damage, fragment",
    [
        ("flipped.tokens", _flip_an_id, "checksum mismatch"),
        ("truncated.tokens", lambda raw: raw[:-100], "truncated"),
        ("header.tokens", lambda raw: raw[:16] + b"x" + raw[17:], "not valid JSON"),
    ],
)
def test_a_corrupt_token_file_is_one_line_and_exit_2(
    corpus, text_and_token_runs, monkeypatch, capsys, name, damage, fragment
):
    path = corrupted(corpus, name, damage)
    monkeypatch.chdir(corpus)
    out = corpus / f"run-{name}"
    code, _, err = run_main(["train", "--data", path, *SMALL, "--out", out], capsys)
    assert_usage_error(code, err, "--data", name, fragment)
    assert not out.exists()
    code, _, err = run_main(["eval", text_and_token_runs["tokens"] / "model.rnnfast", "--data", path], capsys)
    assert_usage_error(code, err, "--data", name, fragment)


def test_validation_and_level_must_match_the_token_file(corpus, tmp_path, monkeypatch, capsys):
    other = tmp_path / "other.txt"
    other.write_text("completely different characters: XYZ 123\n" * 20, encoding="utf-8")
    prepared(other, tmp_path / "other.tokens")
    prepared(corpus / "corpus.txt", tmp_path / "corpus.tokens")
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--data", "corpus.tokens", "--val-data", "other.tokens"], ["--val-data", "another tokenizer"]),
        (
            ["--data", "corpus.tokens", "--val-data", "other.txt"],
            ["--val-data", "other.txt", "not among the tokenizer's"],
        ),
        (["--data", "corpus.tokens", "--level", "word"], ["--level", "char tokens"]),
        (["--data", str(corpus / "corpus.txt"), "--val-data", "corpus.tokens"], ["--val-data", "token file"]),
    ]
    for args, fragments in cases:
        code, _, err = run_main(["train", *args, *SMALL, "--out", tmp_path / "run"], capsys)
        assert_usage_error(code, err, *fragments)
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["missing.txt", "out.tokens"], ["text_path", "missing.txt", "does not exist"]),
        (["corpus.txt", "out.tokens", "--max-vocab", "100"], ["--max-vocab", "--level word"]),
        (["corpus.txt", "out.tokens", "--level", "word", "--max-vocab", "1"], ["max_vocab", ">= 2"]),
        (["corpus.txt", "no/such/dir/out.tokens"], ["out_path", "does not exist"]),
        (["corpus.txt", "out.tokens", "--encoding", "no-such-codec"], ["encoding", "no-such-codec"]),
    ],
)
def test_bad_prepare_arguments_are_one_line_and_write_nothing(corpus, monkeypatch, capsys, args, fragments):
    monkeypatch.chdir(corpus)
    code, out, err = run_main(["prepare", *args], capsys)
    assert_usage_error(code, err, *fragments)
    assert out == "" and not (corpus / "out.tokens").exists()


# ----- memory -------------------------------------------------------------------------------------------------
_PEAK_MEMORY = """
import json, resource, sys
from rnnfast.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_training_memory_does_not_grow_with_the_corpus(tmp_path):
    """A small model trained for a second on a 20 MiB and on a 200 MiB token file, validation a slice of each: the
    peak resident memory of the second run exceeds the first by far less than the 180 MiB between the corpora.
    Holding the corpus in memory once, in any dtype, would add at least that much."""
    rng = np.random.default_rng(0)
    block = "".join(rng.choice(np.array(list("abcdefghij klmnopqrst\nuvwxyz,.;")), size=1 << 16))
    sizes = {"small": 320, "big": 3200}  # blocks of 64 KiB: 20 and 200 MiB
    peaks = {}
    for name, repeats in sizes.items():
        text = tmp_path / f"{name}.txt"
        with open(text, "w", encoding="ascii", newline="") as f:
            for _ in range(repeats):
                f.write(block)
        assert prepared(text, tmp_path / f"{name}.tokens")["count"] == repeats * len(block)
        text.unlink()
        args = [
            "train",
            "--data",
            f"{name}.tokens",
            "--embed",
            "16",
            "--hidden",
            "32",
            "--layers",
            "1",
            "--seq-len",
            "32",
            "--batch-size",
            "64",
            "--val-fraction",
            "0.0001",
            "--minutes",
            "0.02",
            "--no-progress",
            "--threads",
            "1",
            "--out",
            f"run-{name}",
        ]
        result = subprocess.run(
            [sys.executable, "-c", _PEAK_MEMORY, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.splitlines()[-1])
        assert report["code"] == 0
        assert (tmp_path / f"run-{name}" / "last.rnnfast").exists()
        peaks[name] = report["peak_bytes"]
    growth = peaks["big"] - peaks["small"]
    corpus_growth = (sizes["big"] - sizes["small"]) * len(block)
    assert growth < 32 << 20, f"peak memory grew by {growth / 2**20:.1f} MiB for {corpus_growth / 2**20:.0f} MiB more"
