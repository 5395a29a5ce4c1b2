"""The ``rnnfast`` command line end to end on tiny corpora: train -> sample -> eval, word level, bad input, and
resuming after a time limit or Ctrl-C with the same final weights as an uninterrupted run.

Training, sampling and resuming run as ``python -m rnnfast`` in subprocesses with a small model and one thread;
the many bad-input cases call ``rnnfast.cli.main`` in this process, which is what ``python -m rnnfast`` runs, to
keep the file fast. Metrics printed by ``eval`` are recomputed here from the checkpoint with a numpy log-softmax.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rnnfast as rf

SIZES = ["--embed", "16", "--hidden", "32", "--layers", "1", "--seq-len", "16", "--batch-size", "4", "--no-progress"]
# One thread makes runs reproducible; in-process calls leave the thread setting of the test process alone.
SMALL = [*SIZES, "--threads", "1"]
METRIC_KEYS = {"step", "epoch", "elapsed_s", "train_loss", "val_loss", "val_ppl", "val_bpc", "tokens_per_s"}
WORDS = ["quick", "brown", "red"]


def cli(*args, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnfast", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def run_main(argv, capsys) -> tuple[int, str, str]:
    """``rnnfast.cli.main(argv)`` in this process: exit code, stdout, stderr."""
    from rnnfast.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors exit from inside the parser
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


def assert_usage_error(code: int, stderr: str, *fragments: str) -> None:
    """Exit code 2, exactly one line on stderr naming each fragment, no traceback."""
    assert code == 2, (code, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and lines[0].startswith("rnnfast")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def char_corpus() -> str:
    """About 3.6 KB of one repeated sentence pattern: a character model can learn it within seconds."""
    return "".join(f"the {WORDS[i % 3]} fox jumps over the lazy dog {i % 3}.\n" for i in range(90))


def numpy_lm_metrics(model, ids: np.ndarray, batch_size: int) -> dict:
    """Loss, accuracy and macro-F1 of next-token prediction over ``batch_size`` parallel streams of ``ids``,
    computed with one forward pass per stream (what chunked evaluation with a carried state must equal)."""
    per_stream = len(ids) // batch_size
    streams = ids[: per_stream * batch_size].reshape(batch_size, per_stream).T
    logits, _ = model.forward(streams[:-1])
    z = logits.astype(np.float64).reshape(-1, logits.shape[-1])
    targets = streams[1:].reshape(-1)
    log_softmax = z - z.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    loss = float(-log_softmax[np.arange(len(targets)), targets].mean())
    predicted = z.argmax(1)
    f1s = []
    for label in np.union1d(targets, predicted):
        tp = np.sum((predicted == label) & (targets == label))
        precision = tp / max(np.sum(predicted == label), 1)
        recall = tp / max(np.sum(targets == label), 1)
        f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return {"loss": loss, "accuracy": float(np.mean(predicted == targets)), "macro_f1": float(np.mean(f1s))}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    text = char_corpus()
    (root / "train.txt").write_text(text)
    (root / "val.txt").write_text(text[:600])
    (root / "test.txt").write_text(text[600:1200])
    return root


@pytest.fixture(scope="module")
def trained(corpus_dir) -> Path:
    """A character model trained for 3 epochs with validation and test files; returns its --out folder."""
    out = corpus_dir / "run"
    ok(
        cli(
            "train",
            "--data",
            "train.txt",
            "--val-data",
            "val.txt",
            "--test-data",
            "test.txt",
            *SMALL,
            "--epochs",
            "3",
            "--lr",
            "0.01",
            "--seed",
            "3",
            "--out",
            out,
            cwd=corpus_dir,
        )
    )
    return out


# ----- train -----------------------------------------------------------------------------------------------
def test_train_writes_checkpoints_and_documented_metrics(trained):
    assert {"model.rnnfast", "last.rnnfast", "metrics.jsonl"} <= {p.name for p in trained.iterdir()}
    records = read_metrics(trained)
    evaluations, final = records[:-1], records[-1]
    assert len(evaluations) == 3  # one per epoch
    for record in evaluations:
        assert METRIC_KEYS <= set(record), record
        assert record["val_ppl"] == pytest.approx(math.exp(record["val_loss"]), rel=1e-9)
        assert record["val_bpc"] == pytest.approx(record["val_loss"] / math.log(2), rel=1e-9)
        assert record["tokens_per_s"] > 0 and record["elapsed_s"] >= 0
    assert [r["step"] for r in evaluations] == sorted({r["step"] for r in evaluations})
    assert final["final"] is True
    assert final["test_ppl"] == pytest.approx(math.exp(final["test_loss"]), rel=1e-9)


def test_training_learns_a_repetitive_corpus(trained):
    vocab = len(set(char_corpus()))
    records = read_metrics(trained)[:-1]
    assert records[-1]["val_loss"] < 0.25 * math.log(vocab), records[-1]
    assert records[-1]["train_loss"] < records[0]["train_loss"]


def test_checkpoints_hold_the_best_and_the_last_model(trained, corpus_dir):
    *records, final = read_metrics(trained)
    best, last = rf.load(trained / "model.rnnfast"), rf.load(trained / "last.rnnfast")
    val_ids, test_ids = (last.tokenizer.encode((corpus_dir / name).read_text()) for name in ("val.txt", "test.txt"))
    # Training evaluates held-out data as min(batch size, len // 2) = 4 streams.
    for ckpt, expected in ((best, min(r["val_loss"] for r in records)), (last, records[-1]["val_loss"])):
        ckpt.model.eval()
        assert numpy_lm_metrics(ckpt.model, val_ids, 4)["loss"] == pytest.approx(expected, rel=1e-5)
    assert numpy_lm_metrics(best.model, test_ids, 4)["loss"] == pytest.approx(final["test_loss"], rel=1e-5)
    assert last.step == records[-1]["step"]
    assert last.optimizer_state["step"] == records[-1]["step"]
    assert last.tokenizer.vocab == tuple(sorted(set(char_corpus())))


# ----- sample ----------------------------------------------------------------------------------------------
def test_sample_prints_the_requested_number_of_corpus_characters(trained, corpus_dir):
    out = ok(cli("sample", trained / "model.rnnfast", "-n", 200, "--seed", 1, cwd=corpus_dir)).stdout
    assert out.endswith("\n")
    text = out[:-1]
    assert len(text) == 200
    assert set(text) <= set(char_corpus())
    assert "fox" in text  # a trained model reproduces the corpus' words


def test_sample_with_bfloat16_weights_equals_the_python_api(trained, corpus_dir):
    out = ok(
        cli(
            "sample",
            trained / "model.rnnfast",
            "--prime",
            "the ",
            "-n",
            120,
            "--seed",
            3,
            "--weight-dtype",
            "bfloat16",
            cwd=corpus_dir,
        )
    ).stdout
    ckpt = rf.load(trained / "model.rnnfast")
    ckpt.model.eval()
    ids = ckpt.model.generate(ckpt.tokenizer.encode("the "), 120, seed=3, weight_dtype="bfloat16")
    assert out == "the " + ckpt.tokenizer.decode(ids) + "\n"
    assert "fox" in out


def test_sample_with_int8_weights_equals_the_quantized_model(trained, corpus_dir):
    args = ("sample", trained / "model.rnnfast", "--prime", "the ", "-n", 120, "--seed", 3, "--num-samples", 2)
    out = ok(cli(*args, "--weight-dtype", "int8", cwd=corpus_dir)).stdout
    ckpt = rf.load(trained / "model.rnnfast")
    quantized = ckpt.model.quantize("int8")
    texts = [
        "the " + ckpt.tokenizer.decode(quantized.generate(ckpt.tokenizer.encode("the "), 120, seed=s)) for s in (3, 4)
    ]
    assert out == "".join(f"----- sample {k + 1} -----\n{text}\n" for k, text in enumerate(texts))
    assert "fox" in out


def test_eval_with_int8_weights_is_the_quantized_model_and_close_to_float32(trained, corpus_dir, tmp_path):
    def evaluate(path, *extra):
        return json.loads(ok(cli("eval", path, "--data", "test.txt", *extra, cwd=corpus_dir)).stdout)

    float32 = evaluate(trained / "model.rnnfast")
    int8 = evaluate(trained / "model.rnnfast", "--weight-dtype", "int8")
    assert int8["loss"] != float32["loss"] and abs(int8["loss"] - float32["loss"]) < 0.01
    # A checkpoint saved already quantized evaluates the same without the option, and refuses float32.
    ckpt = rf.load(trained / "model.rnnfast")
    rf.save(tmp_path / "int8.rnnfast", ckpt.model.quantize("int8"), tokenizer=ckpt.tokenizer, extra=ckpt.extra)
    assert evaluate(tmp_path / "int8.rnnfast") == int8
    result = cli("eval", tmp_path / "int8.rnnfast", "--data", "test.txt", "--weight-dtype", "float32", cwd=corpus_dir)
    assert_usage_error(result.returncode, result.stderr, "--weight-dtype: got float32", "int8")


def test_sample_with_prime_continues_it(trained, corpus_dir):
    out = ok(
        cli("sample", trained / "model.rnnfast", "--prime", "the lazy ", "-n", 50, "--temperature", 0, cwd=corpus_dir)
    ).stdout
    assert out.startswith("the lazy ") and len(out) == len("the lazy ") + 50 + 1
    assert out[len("the lazy ") :].startswith("dog")


def test_sample_same_seed_same_text_other_seed_other_text(trained, corpus_dir):
    def sample(seed):
        return ok(
            cli("sample", trained / "model.rnnfast", "-n", 150, "--temperature", 1.5, "--seed", seed, cwd=corpus_dir)
        ).stdout

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first


# ----- eval ------------------------------------------------------------------------------------------------
def test_eval_prints_one_json_object_with_recomputable_metrics(trained, corpus_dir):
    out = ok(cli("eval", trained / "model.rnnfast", "--data", "test.txt", cwd=corpus_dir)).stdout
    lines = out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == {"loss", "ppl", "bpc", "accuracy", "macro_f1"}
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]), rel=1e-9)
    assert result["bpc"] == pytest.approx(result["loss"] / math.log(2), rel=1e-9)

    ckpt = rf.load(trained / "model.rnnfast")
    ckpt.model.eval()
    ids = ckpt.tokenizer.encode((corpus_dir / "test.txt").read_text())
    expected = numpy_lm_metrics(ckpt.model, ids, batch_size=10)  # eval's default --batch-size
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert result["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
    assert result["macro_f1"] == pytest.approx(expected["macro_f1"], rel=1e-9)


# ----- word level ------------------------------------------------------------------------------------------
def test_word_level_train_sample_eval(tmp_path):
    lines = [f"the {WORDS[i % 3]} cat sat on mat {i % 4}" for i in range(240)]
    (tmp_path / "words.txt").write_text("\n".join(lines) + "\n")
    ok(
        cli(
            "train",
            "--data",
            "words.txt",
            "--level",
            "word",
            *SMALL,
            "--epochs",
            "4",
            "--lr",
            "0.01",
            "--out",
            "wrun",
            cwd=tmp_path,
        )
    )
    ckpt = rf.load(tmp_path / "wrun" / "model.rnnfast")
    assert ckpt.tokenizer.kind == "word"
    vocab = set(ckpt.tokenizer.vocab)
    assert {"the", "cat", "<eos>", "<unk>"} <= vocab
    records = read_metrics(tmp_path / "wrun")
    assert records[-1]["val_loss"] < 0.5 * math.log(len(vocab))

    out = ok(cli("sample", "wrun/model.rnnfast", "--prime", "the red", "-n", 30, "--seed", 2, cwd=tmp_path)).stdout
    assert out.startswith("the red ") and out.endswith("\n")
    generated = out[len("the red ") : -1]
    assert len(generated.split()) + generated.count("\n") == 30  # each <eos> prints as a line break
    assert set(generated.split()) <= vocab - {"<eos>"}

    result = json.loads(ok(cli("eval", "wrun/model.rnnfast", "--data", "words.txt", cwd=tmp_path)).stdout)
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]), rel=1e-9)
    assert result["loss"] < 0.5 * math.log(len(vocab))


# ----- bad input -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(corpus_dir) -> Path:
    root = corpus_dir / "bad"
    root.mkdir()
    (root / "empty.txt").write_text("")
    (root / "binary.dat").write_bytes(bytes(range(256)) * 8)
    (root / "nul.txt").write_bytes(b"hello\x00world\n" * 50)
    (root / "short.txt").write_text("abcdefg")
    return root


@pytest.fixture
def existing_run(trained, tmp_path) -> Path:
    """A copy of a finished run, as an --out folder that failing commands must leave alone."""
    out = tmp_path / "existing"
    shutil.copytree(trained, out)
    return out


TRAIN_ERRORS = [
    (["--data", "missing.txt"], ["missing.txt", "does not exist"]),
    (["--data", "bad/empty.txt"], ["empty.txt", "empty"]),
    (["--data", "bad/binary.dat"], ["binary.dat", "binary"]),
    (["--data", "bad/nul.txt"], ["nul.txt", "binary"]),
    (["--data", "bad/short.txt", "--val-data", "val.txt"], ["training data", "too few", "batch size 4"]),
    (["--data", "train.txt", "--val-data", "missing-val.txt"], ["missing-val.txt"]),
    (["--data", "train.txt", "--cell", "transformer"], ["--cell", "transformer"]),
    (["--data", "train.txt", "--level", "sentence"], ["--level", "sentence"]),
    (["--data", "train.txt", "--optimizer", "rmsprop"], ["--optimizer", "rmsprop"]),
    (["--data", "train.txt", "--dropout", "1.5"], ["--dropout", "1.5"]),
    (["--data", "train.txt", "--lr", "-1"], ["--lr", "-1"]),
    (["--data", "train.txt", "--epochs", "two"], ["--epochs", "two"]),
    (["--data", "train.txt", "--tie-weights"], ["tie_weights", "16", "32"]),
]


@pytest.mark.parametrize("args, fragments", TRAIN_ERRORS, ids=[" ".join(a[2:]) or a[1] for a, _ in TRAIN_ERRORS])
def test_bad_train_input_is_one_line_and_damages_nothing(
    corpus_dir, bad_files, existing_run, monkeypatch, capsys, args, fragments
):
    monkeypatch.chdir(corpus_dir)
    before = snapshot(existing_run)
    code, _, err = run_main(["train", *SIZES, *args, "--out", existing_run], capsys)
    assert_usage_error(code, err, *fragments)
    assert snapshot(existing_run) == before


@pytest.mark.parametrize("command", ["sample", "eval"])
@pytest.mark.parametrize(
    "checkpoint, fragments",
    [
        ("train.txt", ["train.txt", "not an rnnfast checkpoint"]),
        ("bad/binary.dat", ["binary.dat", "not an rnnfast checkpoint"]),
        ("bad/empty.txt", ["empty.txt"]),
        ("missing.rnnfast", ["missing.rnnfast"]),
    ],
)
def test_sample_and_eval_refuse_non_checkpoints(
    corpus_dir, bad_files, monkeypatch, capsys, command, checkpoint, fragments
):
    monkeypatch.chdir(corpus_dir)
    extra = ["--data", "test.txt"] if command == "eval" else []
    assert_usage_error(*run_main([command, checkpoint, *extra], capsys)[::2], *fragments)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["sample", "{ckpt}", "--top-p", "0"], ["--top-p", "0"]),
        (["sample", "{ckpt}", "--top-p", "1.5"], ["--top-p", "1.5"]),
        (["sample", "{ckpt}", "--temperature", "-1"], ["--temperature", "-1"]),
        (["sample", "{ckpt}", "--top-k", "0"], ["--top-k", "0"]),
        (["sample", "{ckpt}", "--weight-dtype", "float16"], ["--weight-dtype", "float16"]),
        (["sample", "{ckpt}", "-n", "many"], ["-n", "many"]),
        (["sample", "{ckpt}", "--prime", "XYZ"], ["'X'"]),
        (["eval", "{ckpt}", "--data", "bad/binary.dat"], ["binary.dat"]),
        (["eval", "{ckpt}", "--data", "bad/empty.txt"], ["empty.txt"]),
        (["eval", "{ckpt}", "--data", "missing.txt"], ["missing.txt"]),
    ],
)
def test_bad_sample_and_eval_arguments(corpus_dir, bad_files, existing_run, monkeypatch, capsys, args, fragments):
    monkeypatch.chdir(corpus_dir)
    before = snapshot(existing_run)
    args = [existing_run / "model.rnnfast" if a == "{ckpt}" else a for a in args]
    assert_usage_error(*run_main(args, capsys)[::2], *fragments)
    assert snapshot(existing_run) == before


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--data", "bad/binary.dat"], "binary.dat"),
        (["sample", "train.txt"], "not an rnnfast checkpoint"),
        (["train", "--cell", "x"], "--cell"),
    ],
)
def test_errors_through_python_m_rnnfast_are_one_line(corpus_dir, bad_files, args, fragment):
    result = cli(*args, cwd=corpus_dir)
    assert_usage_error(result.returncode, result.stderr, fragment)


def test_failed_resume_exits_2_and_keeps_the_checkpoint(corpus_dir, existing_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(corpus_dir)
    before = snapshot(existing_run)
    mismatched = [a if a != "32" else "8" for a in SIZES]  # another hidden size than the checkpoint's
    code, _, err = run_main(
        ["train", "--data", "train.txt", "--val-data", "val.txt", *mismatched, "--resume", "--out", existing_run],
        capsys,
    )
    # The line announcing the run may come first; the error is the last line.
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("rnnfast train: error: ") and "shape" in err.splitlines()[-1]
    assert snapshot(existing_run) == before

    code, _, err = run_main(["train", "--data", "train.txt", *SIZES, "--resume", "--out", tmp_path / "empty"], capsys)
    assert code == 2 and "last.rnnfast does not exist" in err.splitlines()[-1]


# ----- interruption and resume ------------------------------------------------------------------------------
# Dropout and a decaying learning rate make the random streams and the schedule part of what must be restored.
RESUMABLE = [
    "--data",
    "train.txt",
    "--val-data",
    "val.txt",
    *SMALL,
    "--dropout",
    "0.1",
    "--lr",
    "0.005",
    "--lr-decay",
    "0.9",
    "--decay-after",
    "2",
    "--epochs",
    "12",
    "--eval-every",
    "25",
    "--seed",
    "11",
]
# A resume that loses any state (the carried hidden state, a random stream, the Adam moments, the batch position)
# moves the final weights by more than 0.05 on this run; float rounding alone moves them by about 1e-5.
RESUME_ATOL = 1e-3


def final_state(run_dir: Path):
    ckpt = rf.load(run_dir / "last.rnnfast")
    return ckpt.step, ckpt.model.state_dict(), ckpt.optimizer_state


def assert_same_final_state(resumed: Path, reference: Path, atol: float) -> None:
    step, weights, optimizer = final_state(resumed)
    ref_step, ref_weights, ref_optimizer = final_state(reference)
    assert step == ref_step
    assert weights.keys() == ref_weights.keys() and optimizer.keys() == ref_optimizer.keys()
    for name in weights:
        np.testing.assert_allclose(weights[name], ref_weights[name], rtol=0, atol=atol, err_msg=name)
    for key, value in optimizer.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(value, ref_optimizer[key], rtol=1e-2 if atol else 0, atol=atol, err_msg=key)
        else:
            assert value == ref_optimizer[key], key


@pytest.fixture(scope="module")
def uninterrupted(corpus_dir) -> Path:
    out = corpus_dir / "uninterrupted"
    ok(cli("train", *RESUMABLE, "--out", out, cwd=corpus_dir))
    return out


@pytest.fixture(scope="module")
def resumed_after_time_limit(corpus_dir, uninterrupted) -> Path:
    out = corpus_dir / "timed"
    ok(cli("train", *RESUMABLE, "--minutes", "0.002", "--out", out, cwd=corpus_dir))
    stopped_at = rf.load(out / "last.rnnfast").step
    assert 0 < stopped_at < final_state(uninterrupted)[0], "the time limit did not stop the run early"
    ok(cli("train", *RESUMABLE, "--resume", "--out", out, cwd=corpus_dir))
    return out


def test_resume_after_time_limit_matches_uninterrupted_run(resumed_after_time_limit, uninterrupted):
    assert_same_final_state(resumed_after_time_limit, uninterrupted, atol=RESUME_ATOL)


def test_resume_after_time_limit_is_bit_identical(resumed_after_time_limit, uninterrupted):
    assert_same_final_state(resumed_after_time_limit, uninterrupted, atol=0.0)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited with {process.returncode} before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.005)


def interrupt(process: subprocess.Popen) -> str:
    """Send Ctrl-C and return stderr once the process has exited."""
    try:
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_saves_last_and_resume_matches_uninterrupted_run(corpus_dir, uninterrupted, tmp_path):
    out = tmp_path / "interrupted"
    metrics = out / "metrics.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnfast", "train", *RESUMABLE, "--out", str(out)],
        cwd=corpus_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: metrics.exists() and metrics.read_text().strip(), process, "progress in metrics.jsonl")
    stderr = interrupt(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    stopped_at = rf.load(out / "last.rnnfast").step
    assert 0 < stopped_at < final_state(uninterrupted)[0]

    ok(cli("train", *RESUMABLE, "--resume", "--out", out, cwd=corpus_dir))
    assert_same_final_state(out, uninterrupted, atol=RESUME_ATOL)


def test_ctrl_c_before_the_first_evaluation_saves_last(corpus_dir, tmp_path):
    # One epoch takes seconds even on a fast CPU (344,000 tokens/s ran 16 copies in under 0.2 s).
    (tmp_path / "long.txt").write_text(char_corpus() * 1000)
    out = tmp_path / "early"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rnnfast",
            "train",
            "--data",
            str(tmp_path / "long.txt"),
            "--val-data",
            "val.txt",
            *SMALL,
            "--hidden",
            "64",
            "--out",
            str(out),
        ],
        cwd=corpus_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    announced = process.stderr.readline()  # printed just before training starts
    assert announced.startswith("rnnfast:"), announced
    time.sleep(0.2)
    stderr = interrupt(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text().strip()
    assert rf.load(out / "last.rnnfast").step > 0


def test_the_main_job_trains_on_the_standard_library_docstrings_and_prints_a_sample(tmp_path):
    """The README's main job without --data (here with a tiny model and a short time limit): it trains on the
    standard library's docstrings, saves both checkpoints and prints text made of the corpus' characters."""
    result = ok(
        cli(
            "train",
            "--hidden",
            16,
            "--layers",
            1,
            "--embed",
            8,
            "--minutes",
            0.05,
            "--no-progress",
            "--out",
            tmp_path / "main",
            cwd=tmp_path,
            timeout=240,
        )
    )
    assert (tmp_path / "main" / "model.rnnfast").exists() and (tmp_path / "main" / "last.rnnfast").exists()
    vocab = set(rf.load(tmp_path / "main" / "model.rnnfast").tokenizer.vocab)
    sample = result.stdout.rstrip("\n")
    assert len(sample) >= 200 and set(sample) <= vocab
