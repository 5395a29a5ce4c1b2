"""Classification and tagging of sequences of numbers from the command line and from Python: UEA/UCR .ts files,
.npz arrays (labels or per-step tags) and folders of .wav files, with per-channel standardisation fitted on the
training split, the confusion matrix in ``rnnfast eval`` and CSV predictions."""

from __future__ import annotations

import csv
import io as stdio
import json
import wave

import numpy as np
import pytest

import rnnfast as rf
from rnnfast.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def waves(n: int, seed: int, length=(30, 50)):
    """Noisy sines (class "sine") and square waves (class "square") of random phase and length."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        t = np.arange(rng.integers(*length))
        phase = rng.uniform(0, 2 * np.pi)
        label = "sine" if k % 2 else "square"
        values = np.sin(t / 3 + phase) if label == "sine" else np.sign(np.sin(t / 3 + phase))
        out.append((values + rng.normal(0, 0.1, len(t)), label))
    return out


def write_ts(path, series, equal: bool = False) -> None:
    lines = [
        "@problemName Waves",
        "@timeStamps false",
        "@missing false",
        "@univariate true",
        f"@equalLength {'true' if equal else 'false'}",
        "@classLabel true sine square",
        "@data",
    ]
    lines += [",".join(f"{v:.5f}" for v in values) + f":{label}" for values, label in series]
    path.write_text("\n".join(lines) + "\n")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ts_train_eval_predict(tmp_path, capsys):
    write_ts(tmp_path / "train.ts", waves(80, 0))
    write_ts(tmp_path / "test.ts", waves(40, 1))
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "classify",
        "--format",
        "ts",
        "--data",
        tmp_path / "train.ts",
        "--test-data",
        tmp_path / "test.ts",
        "--epochs",
        30,
        "--hidden",
        16,
        "--batch-size",
        8,
        "--lr",
        0.01,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    assert "test: accuracy" in err
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "test.ts")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["classes"] == ["sine", "square"]
    confusion = np.array(result["confusion_matrix"])
    assert confusion.sum() == 40 and confusion.trace() / 40 == pytest.approx(result["accuracy"])
    assert result["accuracy"] > 0.9
    code, stdout, err = run(capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "test.ts")
    assert code == 0, err
    rows = list(csv.reader(stdio.StringIO(stdout)))
    assert rows[0] == ["id", "label", "p_sine", "p_square"] and len(rows) == 41
    gold = [label for _, label in waves(40, 1)]
    assert np.mean([r[1] == g for r, g in zip(rows[1:], gold)]) == pytest.approx(result["accuracy"])
    for row in rows[1:]:
        p = [float(v) for v in row[2:]]
        assert sum(p) == pytest.approx(1, abs=1e-5) and row[1] == ["sine", "square"][int(np.argmax(p))]


def test_standardisation_is_fitted_on_the_training_split_and_saved(tmp_path, capsys):
    train = [(values * 3 + 5, label) for values, label in waves(20, 2)]
    write_ts(tmp_path / "train.ts", train)
    write_ts(tmp_path / "val.ts", [(values - 100, label) for values, label in waves(10, 3)])
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "classify",
        "--format",
        "ts",
        "--data",
        tmp_path / "train.ts",
        "--val-data",
        tmp_path / "val.ts",
        "--epochs",
        1,
        "--hidden",
        4,
        "--no-progress",
        "--out",
        tmp_path / "run",
    )
    assert code == 0, err
    settings = rf.load(tmp_path / "run" / "model.rnnfast").extra["task"]
    frames = np.concatenate([np.round(values, 5) for values, _ in train])
    assert settings["task"] == "sequences" and settings["kind"] == "classify"
    np.testing.assert_allclose(settings["mean"], [frames.mean()], rtol=1e-9)
    np.testing.assert_allclose(settings["std"], [frames.std()], rtol=1e-9)


def test_npz_per_step_tags(tmp_path, capsys):
    rng = np.random.default_rng(0)

    def segments(n):
        x = rng.normal(0, 1, (n, 40, 2))
        y = (x[:, :, 0] > 0.3).astype(np.int64) + (x[:, :, 1] > 1.0)  # tags 0, 1, 2 from the current values
        return x, y

    x, y = segments(120)
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=rng.integers(20, 41, 120))
    x_test, y_test = segments(30)
    np.savez(tmp_path / "test.npz", x=x_test, y=y_test)
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "tag",
        "--format",
        "npz",
        "--data",
        tmp_path / "train.npz",
        "--epochs",
        30,
        "--hidden",
        16,
        "--lr",
        0.02,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "test.npz")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["accuracy"] > 0.9 and np.array(result["confusion_matrix"]).sum() == y_test.size
    code, stdout, err = run(capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "test.npz")
    rows = list(csv.reader(stdio.StringIO(stdout)))
    assert rows[0] == ["id", "tags"] and len(rows) == 31
    predicted = np.array([[int(t) for t in r[1].split()] for r in rows[1:]])
    assert np.mean(predicted == y_test) == pytest.approx(result["accuracy"])


def write_tone(path, frequency: float, rate: int, seconds: float, rng) -> None:
    t = np.arange(int(rate * seconds)) / rate
    signal = 0.5 * np.sin(2 * np.pi * frequency * t) + rng.normal(0, 0.02, len(t))
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((signal * 32767).astype("<i2").tobytes())


def test_wav_folders_train_on_log_mel_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 6)):
        for label, base in (("low", 300.0), ("high", 2500.0)):
            (tmp_path / split / label).mkdir(parents=True)
            for k in range(n):
                write_tone(
                    tmp_path / split / label / f"{k}.wav",
                    base * rng.uniform(0.9, 1.1),
                    8000,
                    rng.uniform(0.15, 0.3),
                    rng,
                )
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "classify",
        "--format",
        "wav",
        "--data",
        tmp_path / "train",
        "--test-data",
        tmp_path / "test",
        "--features",
        "logmel",
        "--n-mels",
        20,
        "--epochs",
        10,
        "--hidden",
        16,
        "--batch-size",
        4,
        "--pooling",
        "mean",
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    settings = rf.load(out / "model.rnnfast").extra["task"]
    assert settings["features"]["kind"] == "logmel" and len(settings["mean"]) == 20
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "test")
    assert code == 0, err
    assert json.loads(stdout)["accuracy"] == 1.0  # a 300 Hz tone and a 2.5 kHz tone share no mel band
    code, stdout, err = run(capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "test")
    rows = list(csv.reader(stdio.StringIO(stdout)))
    assert {r[0] for r in rows[1:]} == {f"{k}.wav" for k in range(6)}


def test_fit_takes_what_the_readers_return(tmp_path):
    write_ts(
        tmp_path / "train.ts",
        waves(60, 4),
    )
    write_ts(tmp_path / "test.ts", waves(30, 5))
    train, test = rf.data.read_ts(tmp_path / "train.ts"), rf.data.read_ts(tmp_path / "test.ts")
    model = rf.SequenceClassifier(len(train.classes), input_size=train.dimensions, hidden_size=16, seed=0)
    model.fit(train, validation_data=test, epochs=30, batch_size=8, lr=0.01, seed=0, progress=False)
    result = model.evaluate(test)
    assert result["accuracy"] > 0.9
    predicted = model.predict(test.x)
    assert np.mean([test.classes[p] == g for p, g in zip(predicted, test.y)]) == pytest.approx(result["accuracy"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "ts", "--task", "lm"], "--format: got 'ts' for --task lm, expected no --format"),
        (["--format", "ts", "--features", "mfcc"], "--features: mfcc is for audio (--format wav)"),
        (
            ["--format", "ts", "--min-count", "2"],
            "--min-count: only for --task classify or tag, got --task classify --format ts",
        ),
        (
            ["--format", "tsv", "--n-mels", "20"],
            "--n-mels: only for --task classify or tag with --format ts, npz, wav, got --task classify --format tsv",
        ),
        (["--format", "ts", "--missing", "error"], "is missing, expected a number (missing='error'"),
    ],
)
def test_bad_numeric_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    write_ts(tmp_path / "data.ts", waves(10, 6))
    text = (tmp_path / "data.ts").read_text().replace("@missing false", "@missing true")
    (tmp_path / "data.ts").write_text(text.replace(":square\n", ",?:square\n", 1))
    args = [
        "train",
        "--data",
        tmp_path / "data.ts",
        "--task",
        "classify",
        *extra,
        "--no-progress",
        "--out",
        tmp_path / "run",
    ]
    code, _, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_gunpoint_beats_chance_clearly(shared_data, tmp_path, capsys):
    """Real data: GunPoint (two classes, 50 training series of 150 steps)."""
    uea = shared_data / "uea"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "classify",
        "--format",
        "ts",
        "--data",
        uea / "GunPoint_TRAIN.ts",
        "--test-data",
        uea / "GunPoint_TEST.ts",
        "--cell",
        "gru",
        "--pooling",
        "mean",
        "--hidden",
        64,
        "--epochs",
        100,
        "--batch-size",
        16,
        "--lr",
        0.005,
        "--no-progress",
        "--out",
        tmp_path / "run",
        "--threads",
        2,
    )
    assert code == 0, err
    code, stdout, err = run(capsys, "eval", tmp_path / "run" / "model.rnnfast", "--data", uea / "GunPoint_TEST.ts")
    assert json.loads(stdout)["accuracy"] > 0.7  # chance is 0.5; the archive's 1-NN Euclidean reaches 0.913
