"""The Python training API (fit / evaluate / predict on every model), the loop's new stopping rules (time limit
without an epoch count, patience, callbacks), evaluation of labels a model never saw, the task registry and
settings versions, and the CLI's split between user errors (one line, exit 2) and bugs (traceback, exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_tasks_cli import conll_sentences, write_conll, write_reviews

import rnnfast as rf
from rnnfast import io, metrics, tasks
from rnnfast.cli import main
from rnnfast.tasks.common import UnseenLabelWarning, settings_from_dict

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def marked_sequences(n: int, seed: int):
    """Sequences of ids 1..9; the label says whether id 3 occurs (a rule an LSTM learns in a few epochs)."""
    rng = np.random.default_rng(seed)
    x = [rng.integers(1, 10, size=rng.integers(3, 10)) for _ in range(n)]
    return x, [int((s == 3).any()) for s in x]


def small_classifier(**kwargs):
    return rf.SequenceClassifier(2, vocab_size=10, embed_dim=8, hidden_size=16, seed=0, **kwargs)


# ----- fit / evaluate / predict -----------------------------------------------------------------------------
def test_classifier_fit_learns_and_evaluate_matches_predict():
    x, y = marked_sequences(600, 0)
    x_test, y_test = marked_sequences(200, 1)
    model = small_classifier()
    records = model.fit(x, y, validation_split=0.2, epochs=8, lr=0.02, seed=0, progress=False)
    assert [r["epoch"] for r in records] == list(range(1, 9))
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"} <= set(records[0])
    result = model.evaluate(x_test, y_test)
    assert set(result) == {"loss", "accuracy", "macro_f1"}
    predicted = model.predict(x_test)
    assert result["accuracy"] == pytest.approx(np.mean(predicted == np.array(y_test)))
    assert result["accuracy"] > 0.9  # chance is about 0.6


def test_a_padded_array_with_lengths_is_the_same_data_as_a_list():
    x, y = marked_sequences(64, 2)
    padded, lengths = rf.data.pad_batch(x)
    a, b = small_classifier(), small_classifier()
    ra = a.fit(x, y, epochs=2, seed=5, progress=False)
    rb = b.fit(padded, y, lengths=lengths, epochs=2, seed=5, progress=False)
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]
    np.testing.assert_array_equal(a.predict(x), b.predict(padded, lengths))
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(padded, lengths))


def test_fit_with_out_writes_what_the_command_line_writes(tmp_path):
    x, y = marked_sequences(100, 3)
    model = small_classifier()
    records = model.fit(
        x, y, validation_data=marked_sequences(40, 4), epochs=3, out=tmp_path / "run", seed=1, progress=False
    )
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines == records
    best = rf.load(tmp_path / "run" / "model.rnnfast")
    assert best.extra["task"]["task"] == "classify" and best.extra["task"]["version"] == 1
    for name, value in best.model.state_dict().items():  # the model holds the best weights on return
        np.testing.assert_array_equal(value, model.state_dict()[name])
    assert (tmp_path / "run" / "last.rnnfast").exists()


def test_fit_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_classifier().fit(*marked_sequences(40, 5), epochs=1, progress=False)
    assert os.listdir(tmp_path) == []


def test_patience_stops_after_evaluations_without_improvement_and_keeps_the_best():
    x, y = marked_sequences(60, 6)
    model = small_classifier()
    # A learning rate this small cannot change the validation accuracy: every evaluation after the first is
    # "no better", so training stops after 1 + patience of them.
    records = model.fit(x, y, validation_split=0.25, epochs=50, lr=1e-12, patience=3, seed=0, progress=False)
    assert len(records) == 4


def test_a_callback_returning_true_stops_training():
    seen = []

    def stop_at_second(record):
        seen.append(record["epoch"])
        return len(seen) == 2

    records = small_classifier().fit(*marked_sequences(40, 7), epochs=20, callbacks=[stop_at_second], progress=False)
    assert seen == [1, 2] and len(records) == 2


def test_minutes_without_epochs_trains_until_the_time_is_up():
    x, y = marked_sequences(32, 8)
    records = small_classifier().fit(x, y, minutes=0.01, batch_size=32, progress=False)
    assert records[-1]["elapsed_s"] >= 0.6
    assert records[-1]["epoch"] > tasks.get("classify").DEFAULTS["epochs"]  # one step an epoch, far past 10


def test_the_command_line_minutes_without_epochs_trains_past_the_default_epoch(tmp_path):
    (tmp_path / "text.txt").write_text("abcd" * 100)
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "text.txt"),
                "--hidden",
                "8",
                "--layers",
                "1",
                "--embed",
                "4",
                "--seq-len",
                "8",
                "--batch-size",
                "2",
                "--minutes",
                "0.01",
                "--no-progress",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["epoch"] > tasks.get("lm").DEFAULTS["epochs"]


def test_language_model_fit_learns_a_repetitive_text_and_samples_it():
    text = "abcabd" * 400
    tokenizer = rf.text.CharTokenizer.fit(text)
    ids = tokenizer.encode(text)
    model = rf.LanguageModel(tokenizer.vocab_size, 8, 32, seed=0)
    records = model.fit(ids, validation_split=0.1, epochs=6, batch_size=8, seq_len=24, lr=0.01, seed=0, progress=False)
    assert {"val_loss", "val_ppl", "val_bpc", "val_accuracy"} <= set(records[-1])
    result = model.evaluate(ids[:600], seq_len=24)
    assert {"loss", "ppl", "bpc", "accuracy", "macro_f1"} <= set(result)
    # "ab" is followed by c or d, everything else is determined: the best loss is log(2)/3 per character.
    assert result["loss"] < 0.5
    sample = tokenizer.decode(model.generate(tokenizer.encode("abc"), 30, temperature=0))
    assert "ca" in sample and set(sample) <= set("abcd")


def test_tagger_fit_reports_chunk_f1_from_its_tag_names():
    rng = np.random.default_rng(0)
    # Tag ids: 0 = O, 1 = B-NP, 2 = I-NP. Word 1 starts a noun phrase, word 2 continues it, others are outside.
    x, y = [], []
    for _ in range(300):
        words = rng.integers(1, 6, size=rng.integers(4, 12))
        tags = np.where(words == 1, 1, np.where(words == 2, 2, 0))
        x.append(words)
        y.append(tags)
    model = rf.SequenceTagger(3, vocab_size=6, embed_dim=8, hidden_size=16, seed=0)
    records = model.fit(
        x, y, validation_split=0.2, epochs=6, lr=0.02, tag_names=["O", "B-NP", "I-NP"], seed=0, progress=False
    )
    assert "val_chunk_f1" in records[-1]
    result = model.evaluate(x, y)
    assert set(result) == {"accuracy", "chunk_f1", "loss"} and result["chunk_f1"] > 0.9
    names = np.array(model.tag_names)
    predicted = model.predict(x)
    expected = metrics.chunk_f1([names[t].tolist() for t in y], [names[p].tolist() for p in predicted])["f1"]
    assert result["chunk_f1"] == pytest.approx(expected)
    assert rf.SequenceTagger(**model.config()).tag_names == ["O", "B-NP", "I-NP"]
    with pytest.raises(ValueError, match="tag_names: got 2 names"):
        model.evaluate(x, y, tag_names=["O", "B-NP"])


def test_forecaster_fit_beats_the_naive_forecast_and_saves_its_window():
    t = np.arange(600)
    series = np.sin(2 * np.pi * t / 25) + 0.01 * t
    model = rf.Forecaster(hidden_size=16, seed=0)
    records = model.fit(
        series[:500], validation_data=series[500:], window=30, season=25, epochs=15, lr=0.01, seed=0, progress=False
    )
    assert "val_seasonal_naive_rmse" in records[-1] and model.window == 30
    result = model.evaluate(series[450:], season=25)
    assert result["rmse"] < result["naive_rmse"]
    assert rf.Forecaster(**model.config()).window == 30


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.fit([[1, 2]], [0, 1]), "y: got 2 targets for 1 sequences"),
        (
            lambda m: m.fit(*marked_sequences(10, 0), validation_split=0.2, validation_data=marked_sequences(5, 1)),
            "validation_data, validation_split: got both",
        ),
        (lambda m: m.fit(*marked_sequences(10, 0), window=3), "window: not options of the classify task"),
        (lambda m: m.fit(*marked_sequences(10, 0), patience=2), "patience: got 2, which needs validation data"),
        (lambda m: m.fit(*marked_sequences(10, 0), epochs=0), "epochs"),
        (lambda m: m.evaluate(*marked_sequences(10, 0), lengths=[3]), "lengths: only for a padded array"),
    ],
)
def test_bad_fit_arguments_name_the_argument(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(small_classifier())


# ----- labels the model never saw ---------------------------------------------------------------------------
def test_eval_counts_unseen_classes_as_errors_like_conlleval(tmp_path, capsys):
    write_reviews(tmp_path / "train.tsv", 200, 0)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--task",
                "classify",
                "--data",
                str(tmp_path / "train.tsv"),
                "--epochs",
                "2",
                "--hidden",
                "8",
                "--embed",
                "8",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = (tmp_path / "train.tsv").read_text().splitlines()[:20]
    lines[:5] = [f"meh\t{line.partition(chr(9))[2]}" for line in lines[:5]]  # a class the model never saw
    (tmp_path / "odd.tsv").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["eval", str(out / "model.rnnfast"), "--data", str(tmp_path / "odd.tsv")]) == 0
    stdout, err = capsys.readouterr()
    result = json.loads(stdout)
    assert err.count("\n") == 1 and "warning" in err and "'meh'" in err and "5 gold" in err
    assert main(["predict", str(out / "model.rnnfast"), "--data", str(tmp_path / "odd.tsv")]) == 0
    predicted = capsys.readouterr()[0].splitlines()
    gold = [line.partition("\t")[0] for line in lines]
    assert result["accuracy"] == pytest.approx(np.mean([p == g for p, g in zip(predicted, gold)]))
    classes = sorted(set(gold) | set(predicted))
    f1 = [
        2
        * sum(p == g == c for p, g in zip(predicted, gold))
        / max(sum(p == c for p in predicted) + sum(g == c for g in gold), 1)
        for c in classes
    ]
    assert result["macro_f1"] == pytest.approx(np.mean(f1))


def test_eval_counts_unseen_tags_as_errors_like_conlleval(tmp_path, capsys):
    write_conll(tmp_path / "train.conll", conll_sentences(120, 0))
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--task",
                "tag",
                "--data",
                str(tmp_path / "train.conll"),
                "--epochs",
                "2",
                "--hidden",
                "8",
                "--embed",
                "8",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    sentences = conll_sentences(10, 1)
    sentences[0] = [
        (w, p, "B-LST" if k == 0 else "I-LST" if k == 1 else t) for k, (w, p, t) in enumerate(sentences[0])
    ]  # the CoNLL-2000 test set's I-LST, absent from its training set
    write_conll(tmp_path / "test.conll", sentences)
    capsys.readouterr()
    assert main(["eval", str(out / "model.rnnfast"), "--data", str(tmp_path / "test.conll")]) == 0
    stdout, err = capsys.readouterr()
    result = json.loads(stdout)
    assert err.count("\n") == 1 and "I-LST" in err and "B-LST" in err
    assert (
        main(
            [
                "predict",
                str(out / "model.rnnfast"),
                "--data",
                str(tmp_path / "test.conll"),
                "--out",
                str(tmp_path / "tagged.conll"),
            ]
        )
        == 0
    )
    rows = [
        line.split()
        for line in (tmp_path / "tagged.conll").read_text().splitlines()
        if line.strip() and not line.startswith("-DOCSTART-")
    ]
    gold, predicted = [r[2] for r in rows], [r[3] for r in rows]
    assert result["accuracy"] == pytest.approx(np.mean([p == g for p, g in zip(predicted, gold)]))

    def by_sentence(tags):
        ends = np.cumsum([len(s) for s in sentences])
        return [tags[end - len(s) : end] for s, end in zip(sentences, ends)]

    assert result["chunk_f1"] == pytest.approx(metrics.chunk_f1(by_sentence(gold), by_sentence(predicted))["f1"])


def test_evaluate_in_python_warns_about_unseen_gold_labels():
    from rnnfast.tasks.common import Vocabulary

    with pytest.warns(UnseenLabelWarning, match="'x'"):
        ids = Vocabulary(["a", "b"]).encode_gold(["a", "x", "b"], "labels")
    assert ids.tolist() == [0, -1, 1]


# ----- registry, settings, checkpoints ----------------------------------------------------------------------
def test_every_registered_task_module_meets_the_protocol():
    for key in tasks.REGISTRY:
        module = tasks.get(key)
        assert isinstance(module, tasks.TaskModule), key
        assert module.NAME == key
        assert all(spec.kwargs["default"] is None for spec in module.OPTIONS)
    for name in tasks.names():  # each --task has a module that serves its model's fit and evaluate
        module = tasks.get(name)
        assert isinstance(module, tasks.InMemoryTask) and module.MODEL.TASK == name
    with pytest.raises(ValueError, match="task: got 'audio', expected one of lm, classify, tag, forecast"):
        tasks.get("audio")


@pytest.mark.parametrize(
    "task, data_format, module",
    [
        ("classify", None, "classify"),
        ("classify", "files", "classify"),
        ("classify", "ts", "sequences"),
        ("classify", "wav", "sequences"),
        ("tag", "npz", "sequences"),
        ("tag", None, "tag"),
        ("lm", None, "lm"),
    ],
)
def test_task_and_format_choose_the_module(task, data_format, module):
    assert tasks.resolve(task, data_format).NAME == module


def test_a_format_no_module_of_the_task_reads_is_refused():
    with pytest.raises(ValueError, match="--format: got 'tsv' for --task tag, expected one of ts, npz, wav"):
        tasks.resolve("tag", "tsv")
    with pytest.raises(ValueError, match="--format: got 'ts' for --task lm, expected no --format"):
        tasks.resolve("lm", "ts")


def test_settings_of_unversioned_checkpoints_load_and_newer_versions_are_refused():
    from rnnfast.tasks import classify

    old = settings_from_dict(
        classify.Settings, {"task": "classify", "format": "tsv", "encoding": "utf-8", "vocab": None}, "old.rnnfast"
    )
    assert old.format == "tsv"
    with pytest.raises(ValueError, match="settings version 7, this rnnfast reads versions up to 1"):
        settings_from_dict(classify.Settings, {"task": "classify", "version": 7}, "new.rnnfast")


def test_a_time_limited_language_model_saves_its_carried_state_as_tensors(tmp_path):
    text = "the quick brown fox jumps over the lazy dog\n" * 300
    (tmp_path / "text.txt").write_text(text)
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "text.txt"),
                "--hidden",
                "16",
                "--layers",
                "2",
                "--embed",
                "8",
                "--seq-len",
                "10",
                "--batch-size",
                "4",
                "--eval-every",
                "5",
                "--minutes",
                "0.005",
                "--no-progress",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    last = rf.load(tmp_path / "run" / "last.rnnfast")
    if last.extra["batch"]:  # stopped inside an epoch: the state it carries into the next batch
        assert last.arrays["h"].shape == last.arrays["c"].shape == (2, 4, 16)
    assert "carry" not in last.extra


def test_old_checkpoints_carry_in_json_still_resumes():
    from rnnfast.train import _carry_arrays

    h = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    old = io.Checkpoint(None, None, None, 0, {"carry": [h.tolist(), (h + 1).tolist()]}, {}, 1, "old")
    arrays = _carry_arrays(old)
    np.testing.assert_array_equal(arrays["h"], h)
    np.testing.assert_array_equal(arrays["c"], h + 1)


# ----- command line -----------------------------------------------------------------------------------------
def test_a_bug_shows_its_traceback_and_exits_1(tmp_path):
    code = (
        "import rnnfast.tasks.lm as lm\n"
        "def broken(args):\n    raise RuntimeError('deliberate bug')\n"
        "lm.prepare = broken\n"
        "from rnnfast.cli import main\nraise SystemExit(main(['train', '--data', 'x.txt']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: deliberate bug" in result.stderr


def test_a_usage_error_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr()[1]
    assert err.count("\n") == 1 and "missing.txt" in err


def test_the_repository_root_imports_the_installed_build():
    """`python -m pytest` and `python -c` from the root put the source checkout first on sys.path."""
    result = subprocess.run(
        [sys.executable, "-c", "import rnnfast; print(rnnfast.core.__file__)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).exists()


# ----- non-finite gradients in the loop ----------------------------------------------------------------------
def poison_third_backward(monkeypatch):
    """LanguageModel.backward leaves a NaN gradient on its third call; the loss stays finite."""
    real_backward, calls = rf.LanguageModel.backward, []

    def backward(self):
        real_backward(self)
        calls.append(1)
        if len(calls) == 3:
            self.parameters().grad[0] = np.nan

    monkeypatch.setattr(rf.LanguageModel, "backward", backward)


@pytest.mark.parametrize("clip", [None, 5.0])
def test_a_non_finite_gradient_stops_fit_before_its_update(monkeypatch, clip):
    from rnnfast.train import TrainingError

    poison_third_backward(monkeypatch)
    model = rf.LanguageModel(5, 4, 4, seed=0)
    with pytest.raises(TrainingError, match="non-finite gradient norm at step 3"):
        model.fit(np.arange(400) % 5, epochs=1, batch_size=4, seq_len=5, clip=clip, progress=False)
    assert np.isfinite(model.parameters().data).all()


def test_skip_nonfinite_skips_the_update_of_a_non_finite_gradient(monkeypatch, tmp_path):
    from rnnfast.cli import main

    poison_third_backward(monkeypatch)
    (tmp_path / "text.txt").write_text("abcde fgh ij\n" * 60)
    args = ["train", "--data", str(tmp_path / "text.txt"), "--embed", "4", "--hidden", "4", "--seq-len", "5"]
    args += ["--batch-size", "4", "--epochs", "1", "--eval-every", "5", "--no-progress", "--out", str(tmp_path / "r")]
    assert main([*args, "--skip-nonfinite"]) == 0
    assert np.isfinite(rf.load(tmp_path / "r" / "last.rnnfast").model.parameters().data).all()


def test_tokens_per_second_count_training_time_alone(monkeypatch):
    """Each window's tokens_per_s divides its training tokens by the time its training steps took: a validation
    that takes 1000 s (on a clock the test moves) must not enter it."""
    import time

    from rnnfast.tasks.lm import LanguageModelTask

    real_clock, offset = time.perf_counter, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + offset[0])
    real_evaluate = LanguageModelTask.evaluate

    def slow_evaluate(self, *args, **kwargs):
        offset[0] += 1000.0
        return real_evaluate(self, *args, **kwargs)

    monkeypatch.setattr(LanguageModelTask, "evaluate", slow_evaluate)
    ids = np.arange(600) % 5
    model = rf.LanguageModel(5, 4, 4, seed=0)
    records = model.fit(ids, validation_data=ids[:100], epochs=2, batch_size=4, seq_len=5, progress=False)
    assert offset[0] >= 2000  # validation ran, once per epoch at least
    tokens_per_window = [r["tokens_per_s"] for r in records]
    assert min(tokens_per_window) > 4 * 5 / 10.0  # a window holds steps of 20 tokens; 1000 s would give < 1
