"""The classify, tag and forecast tasks: their vocabularies, splits and baselines, and command-line round trips
(train -> eval -> predict) on small generated files, plus the forecaster on a shared real series."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import rnnfast as rf
from rnnfast.cli import main
from rnnfast.tasks.classify import ClassificationTask, TextVocabulary, text_words
from rnnfast.tasks.common import Vocabulary
from rnnfast.tasks.forecast import ForecastTask, baseline_forecasts
from rnnfast.tasks.tag import TaggingVocabulary, normalize_word

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def metrics_lines(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


# ----- generated files --------------------------------------------------------------------------------------
FILLER = "the a movie film plot actor was is very quite really and but so".split()


def review(rng, positive: bool) -> str:
    words = list(rng.choice(FILLER, rng.integers(3, 12))) + ["good" if positive else "bad"]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def write_reviews(path, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    labels = ["pos" if rng.random() < 0.5 else "neg" for _ in range(n)]
    path.write_text("".join(f"{label}\t{review(rng, label == 'pos')}\n" for label in labels))
    return labels


def conll_sentences(n: int, seed: int) -> list[list[tuple[str, str, str]]]:
    """Word, part of speech, chunk tag: S -> NP V NP [P NP] '.'; 'run' and 'walk' are nouns or verbs."""
    rng = np.random.default_rng(seed)

    def noun_phrase():
        words = [(rng.choice(["The", "a"]), "DT")] + [
            (rng.choice(["big", "old"]), "JJ") for _ in range(rng.integers(0, 3))
        ]
        words.append((rng.choice(["dog", "park", "run", "walk", "idea"]), "NN"))
        return [(w, p, "B-NP" if k == 0 else "I-NP") for k, (w, p) in enumerate(words)]

    out = []
    for _ in range(n):
        s = noun_phrase() + [(rng.choice(["sees", "run", "walk"]), "VB", "B-VP")] + noun_phrase()
        if rng.random() < 0.5:
            s += [("near", "IN", "B-PP")] + noun_phrase()
        out.append(s + [(".", ".", "O")])
    return out


def write_conll(path, sentences) -> None:
    path.write_text(
        "-DOCSTART- -X- O\n\n" + "".join("".join(f"{w} {p} {t}\n" for w, p, t in s) + "\n" for s in sentences)
    )


def write_series(path, n: int = 360, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = np.round(10 + 3 * np.sin(2 * np.pi * t / 12) + 0.01 * t + rng.normal(0, 0.2, n), 3)
    rows = [f"{1970 + k // 12}-{k % 12 + 1:02d},{v}" for k, v in enumerate(values)]
    path.write_text("month,value\n" + "\n".join(rows) + "\n")
    return values


# ----- vocabularies and helpers -----------------------------------------------------------------------------
def test_text_words_and_normalized_words():
    assert text_words("Isn't it GOOD? A well-made film...") == [
        "isn't",
        "it",
        "good",
        "?",
        "a",
        "well-made",
        "film",
        ".",
        ".",
        ".",
    ]
    assert normalize_word("Hello1984") == "hello0000"


def test_vocabulary_order_unknown_words_and_unknown_labels():
    vocab = Vocabulary.fit([["b", "a", "c", "a"], ["c", "a"]], specials=("<unk>",), unknown="<unk>")
    assert vocab.tokens == ["<unk>", "a", "c", "b"]  # by count, ties alphabetical
    assert vocab.encode(["c", "zzz"], "words").tolist() == [2, 0]
    assert Vocabulary.fit([["x"], ["y", "y"]], min_count=2).tokens == ["y"]
    labels = Vocabulary(["neg", "pos"])
    with pytest.raises(ValueError, match="labels: got 'meh', which the model was not trained on"):
        labels.encode(["pos", "meh"], "labels")
    assert Vocabulary.from_dict(vocab.to_dict()).tokens == vocab.tokens


def test_text_vocabulary_encodes_an_empty_text_as_one_unknown_word():
    vocab = TextVocabulary.fit(["good film", "bad film"], ["pos", "neg"])
    # ids: <unk> 0, then by count: film 1, bad 2, good 3
    assert [ids.tolist() for ids in vocab.encode_texts(["Good FILM!", ""])] == [[3, 1, 0], [0]]
    with pytest.raises(ValueError, match="labels: got only"):
        TextVocabulary.fit(["a", "b"], ["x", "x"])


@pytest.mark.parametrize(
    "tags, scheme",
    [
        (["O", "B-NP", "I-NP", "B-VP"], "iob2"),
        (["O", "S-PER", "B-LOC", "E-LOC", "I-LOC"], "iobes"),
        (["NN", "VB", "DT"], None),
        (["O", "B-NP", "X"], None),
    ],
)
def test_chunk_scheme_is_read_from_the_tag_set(tags, scheme):
    sentences = rf.data.TaggedSentences([["w"] * len(tags)], [tags], [[[] for _ in tags]], [[""] * len(tags)])
    assert TaggingVocabulary.fit(sentences).chunk_scheme == scheme


def test_baselines_hand_worked():
    values = np.arange(10, dtype=float) ** 2  # 0 1 4 9 16 25 36 49 64 81
    naive, seasonal = baseline_forecasts(values, np.array([6, 8]), horizon=3, season=2)
    assert naive.tolist() == [[25, 49], [25, 49], [25, 49]]
    # origin 6: steps 6, 7, 8 repeat the last season (values[4], values[5]) -> 16, 25, 16
    assert seasonal.tolist() == [[16, 36], [25, 49], [16, 36]]
    assert baseline_forecasts(values, np.array([6]), 1, None)[1] is None
    with pytest.raises(ValueError, match="season: got 7"):
        baseline_forecasts(values, np.array([6]), 1, 7)


def test_forecast_splits_keep_training_windows_out_of_later_parts():
    values = np.arange(100, dtype=float)
    task = ForecastTask(values, window=10, horizon=3, batch_size=8, val_fraction=0.2, test_fraction=0.1, season=4)
    assert task.bounds == {"train": (0, 70), "val": (70, 90), "test": (90, 100)}
    history, targets = task.windows("train")
    assert history.shape == (10, len(task.origins["train"])) and targets.shape[0] == 3
    assert targets.max() == 69 and history.min() == 0  # nothing from validation or test is trained on
    _, test_targets = task.windows("test")
    assert test_targets.min() == 90 and test_targets.max() == 99
    assert task.train_values.tolist() == list(range(70))
    with pytest.raises(ValueError, match="leave no val forecast"):
        ForecastTask(values, window=10, horizon=11, test_fraction=0.0)


def test_training_batches_replay_exactly_when_resuming_mid_epoch():
    sequences = [np.arange(n) for n in np.random.default_rng(0).integers(1, 20, 50)]
    labels = np.zeros(50, dtype=np.int64)
    task = ClassificationTask((sequences, labels), (sequences[:5], labels[:5]), batch_size=4, seed=3)
    full = list(task.train_batches(2, 0))
    assert len(full) == task.num_train_batches()
    for a, b in zip(full[5:], task.train_batches(2, 5)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(full, task.train_batches(3, 0)))
    forecast = ForecastTask(np.arange(200.0), window=5, batch_size=8)
    again = list(forecast.train_batches(1, 2))
    for a, b in zip(list(forecast.train_batches(1, 0))[2:], again):
        np.testing.assert_array_equal(a, b)


# ----- command line: classify -------------------------------------------------------------------------------
def test_classify_train_eval_predict(tmp_path, capsys):
    write_reviews(tmp_path / "train.tsv", 400, 0)
    gold = write_reviews(tmp_path / "test.tsv", 100, 1)
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "classify",
        "--data",
        tmp_path / "train.tsv",
        "--test-data",
        tmp_path / "test.tsv",
        "--epochs",
        10,
        "--hidden",
        16,
        "--embed",
        8,
        "--lr",
        0.01,
        "--no-progress",
        "--out",
        out,
        "--threads",
        1,
    )
    assert code == 0, err
    assert "test: accuracy" in err
    records = metrics_lines(out)
    assert {"val_loss", "val_accuracy", "val_macro_f1"} <= set(records[0]) and records[-1]["final"]

    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "test.tsv")
    assert code == 0, err
    result = json.loads(stdout)
    assert {"accuracy", "macro_f1"} <= set(result)
    assert result["accuracy"] > 0.9  # "good" or "bad" decides; chance is about 0.5
    assert 0 <= result["macro_f1"] <= 1

    code, _, err = run(
        capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "test.tsv", "--out", tmp_path / "labels.txt"
    )
    assert code == 0, err
    predicted = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(predicted) == len(gold)
    assert np.mean([p == g for p, g in zip(predicted, gold)]) == pytest.approx(result["accuracy"])

    (tmp_path / "texts.txt").write_text("A good film.\n\nSo bad.\n")
    code, stdout, err = run(capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "texts.txt")
    assert code == 0, err
    assert stdout == "pos\n\nneg\n"


def test_classify_one_file_per_class(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 150), ("dev", 30)):
        (tmp_path / split).mkdir()
        for label in ("pos", "neg"):
            (tmp_path / split / f"{label}.txt").write_text(
                "".join(review(rng, label == "pos") + "\n" for _ in range(n))
            )
    files = lambda split: [tmp_path / split / "pos.txt", tmp_path / split / "neg.txt"]  # noqa: E731
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "classify",
        "--format",
        "files",
        "--data",
        *files("train"),
        "--val-data",
        *files("dev"),
        "--test-fraction",
        0.2,
        "--epochs",
        2,
        "--hidden",
        8,
        "--embed",
        8,
        "--bidirectional",
        "--pooling",
        "max",
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    assert "240 training texts" in err  # 300 examples less a random 20 % held out for the test
    assert "test_accuracy" in metrics_lines(out)[-1]
    ckpt = rf.load(out / "model.rnnfast")
    assert ckpt.model.bidirectional and ckpt.model.pooling == "max"
    assert ckpt.extra["task"]["vocab"]["labels"]["tokens"] == ["neg", "pos"]
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", *files("dev"))
    assert code == 0, err
    assert 0 <= json.loads(stdout)["accuracy"] <= 1


# ----- command line: tag ------------------------------------------------------------------------------------
def read_columns(path) -> list[list[list[str]]]:
    sentences, current = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            current.append(line.split())
        elif current:
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])


def test_tag_train_eval_predict_with_features_characters_and_crf(tmp_path, capsys):
    write_conll(tmp_path / "train.conll", conll_sentences(300, 0))
    write_conll(tmp_path / "dev.conll", conll_sentences(40, 1))
    write_conll(tmp_path / "test.conll", conll_sentences(60, 2))
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "tag",
        "--data",
        tmp_path / "train.conll",
        "--val-data",
        tmp_path / "dev.conll",
        "--test-data",
        tmp_path / "test.conll",
        "--feature-columns",
        1,
        "--char-features",
        "--crf",
        "--epochs",
        3,
        "--hidden",
        16,
        "--embed",
        8,
        "--lr",
        0.01,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    records = metrics_lines(out)
    assert {"val_loss", "val_accuracy", "val_chunk_f1"} <= set(records[0])
    model = rf.load(out / "model.rnnfast").model
    assert model.crf and model.char_features and len(model.feature_vocab_sizes) == 1

    # The best checkpoint is the one with the best validation chunk F1.
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "dev.conll")
    assert code == 0, err
    assert json.loads(stdout)["chunk_f1"] == pytest.approx(max(r["val_chunk_f1"] for r in records[:-1]))

    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "test.conll")
    result = json.loads(stdout)
    assert {"accuracy", "chunk_f1"} <= set(result) and result["chunk_f1"] > 0.9

    code, _, err = run(
        capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "test.conll", "--out", tmp_path / "tagged.conll"
    )
    assert code == 0, err
    tagged = read_columns(tmp_path / "tagged.conll")
    assert [[line[:3] for line in s] for s in tagged] == [[list(t) for t in s] for s in conll_sentences(60, 2)]
    gold = [[line[2] for line in s] for s in tagged]
    predicted = [[line[3] for line in s] for s in tagged]
    assert rf.metrics.chunk_f1(gold, predicted)["f1"] == pytest.approx(result["chunk_f1"])

    # int8 weights: eval and predict agree with each other and stay near float32.
    int8 = ("--weight-dtype", "int8")
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "test.conll", *int8)
    assert code == 0, err
    result_int8 = json.loads(stdout)
    assert abs(result_int8["chunk_f1"] - result["chunk_f1"]) < 0.02
    tagged_int8 = tmp_path / "tagged_int8.conll"
    code, _, err = run(
        capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "test.conll", "--out", tagged_int8, *int8
    )
    assert code == 0, err
    predicted = [[line[3] for line in s] for s in read_columns(tagged_int8)]
    assert rf.metrics.chunk_f1(gold, predicted)["f1"] == pytest.approx(result_int8["chunk_f1"])


def test_tag_holds_out_a_fraction_and_tags_text_without_a_tag_column(tmp_path, capsys):
    write_conll(tmp_path / "train.conll", conll_sentences(100, 0))
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "tag",
        "--data",
        tmp_path / "train.conll",
        "--val-fraction",
        0.2,
        "--epochs",
        1,
        "--hidden",
        8,
        "--embed",
        8,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    (tmp_path / "words.txt").write_text("The\ndog\nsees\na\nwalk\n.\n")
    code, stdout, err = run(capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "words.txt")
    assert code == 0, err
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[:6]] == ["The", "dog", "sees", "a", "walk", "."]
    assert all(line.split()[1] in {"B-NP", "I-NP", "B-VP", "B-PP", "O"} for line in lines[:6])


# ----- command line: forecast -------------------------------------------------------------------------------
def test_forecast_train_eval_predict(tmp_path, capsys):
    values = write_series(tmp_path / "series.csv")
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "forecast",
        "--data",
        tmp_path / "series.csv",
        "--column",
        "value",
        "--date-column",
        "month",
        "--horizon",
        3,
        "--epochs",
        3,
        "--hidden",
        16,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    assert "season 12" in err and "seasonal naive rmse" in err
    final = metrics_lines(out)[-1]
    assert {"test_rmse", "test_mae", "test_naive_rmse", "test_seasonal_naive_rmse"} <= set(final)

    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "series.csv")
    assert code == 0, err
    result = json.loads(stdout)
    assert {"rmse", "mae", "naive_rmse", "seasonal_naive_rmse"} <= set(result)
    assert result["rmse"] == pytest.approx(final["test_rmse"])
    # The naive baseline on the last 10 % (36 values), recomputed here from the file's numbers.
    origins = np.arange(len(values) - 36, len(values) - 3 + 1)
    naive = [(values[o + h] - values[o - 1]) ** 2 for o in origins for h in range(3)]
    assert result["naive_rmse"] == pytest.approx(math.sqrt(np.mean(naive)))
    seasonal = [(values[o + h] - values[o + h - 12]) ** 2 for o in origins for h in range(3)]
    assert result["seasonal_naive_rmse"] == pytest.approx(math.sqrt(np.mean(seasonal)))

    code, stdout, err = run(capsys, "predict", out / "model.rnnfast", "--data", tmp_path / "series.csv", "--steps", 5)
    assert code == 0, err
    rows = list(csv.reader(stdout.splitlines()))
    assert rows[0] == ["month", "value"]
    assert [r[0] for r in rows[1:]] == ["2000-01", "2000-02", "2000-03", "2000-04", "2000-05"]
    forecast = np.array([float(r[1]) for r in rows[1:]])
    np.testing.assert_allclose(forecast, rf.load(out / "model.rnnfast").model.predict(values[-24:], 5))


def test_forecaster_beats_seasonal_naive_on_elnino(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--task",
        "forecast",
        "--data",
        shared_data / "timeseries" / "elnino.csv",
        "--column",
        *MONTHS,
        "--date-column",
        "YEAR",
        "--epochs",
        8,
        "--hidden",
        32,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    test = metrics_lines(out)[-1]
    assert test["test_rmse"] < test["test_seasonal_naive_rmse"]
    assert test["test_rmse"] < test["test_naive_rmse"]


# ----- command line: the language model and errors ----------------------------------------------------------
def test_language_model_stays_the_default_task(tmp_path, capsys):
    (tmp_path / "text.txt").write_text("hello world, hello rnn.\n" * 20)
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--data",
        tmp_path / "text.txt",
        "--seq-len",
        10,
        "--batch-size",
        4,
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    ckpt = rf.load(out / "model.rnnfast")
    assert type(ckpt.model).__name__ == "LanguageModel"
    config = ckpt.model.config()
    assert (config["embed_dim"], config["hidden_size"], config["num_layers"], config["dropout"]) == (64, 256, 2, 0)
    assert ckpt.extra["task"]["task"] == "lm"
    code, stdout, err = run(capsys, "eval", out / "model.rnnfast", "--data", tmp_path / "text.txt")
    assert code == 0, err
    assert set(json.loads(stdout)) == {"loss", "ppl", "bpc", "accuracy", "macro_f1"}


@pytest.fixture
def files(tmp_path):
    write_reviews(tmp_path / "train.tsv", 60, 0)
    write_conll(tmp_path / "train.conll", conll_sentences(20, 0))
    write_series(tmp_path / "series.csv")
    (tmp_path / "text.txt").write_text("some text to model, " * 10)
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "--task", "classify", "--data", "train.tsv", "--crf"],
            "--crf: only for --task tag, got --task classify",
        ),
        (
            ["train", "--task", "tag", "--data", "train.conll", "--pooling", "mean"],
            "--pooling: only for --task classify",
        ),
        (["train", "--task", "tag"], "--data: required for --task tag"),
        (["train", "--task", "forecast", "--data", "series.csv"], "--column: required"),
        (["train", "--task", "forecast", "--data", "series.csv", "--column", "price"], "column: got 'price'"),
        (
            ["train", "--task", "forecast", "--data", "series.csv", "--column", "value", "--window", 400],
            "leave no train forecast with window=400",
        ),
        (["train", "--data", "text.txt", "text.txt"], "--data: got 2 files, expected one"),
        (["train", "--task", "classify", "--data", "missing.tsv"], "missing.tsv"),
        (["train", "--task", "tag", "--data", "train.conll", "--tie-weights"], "--tie-weights"),
        (["train", "--task", "classify", "--data", "train.tsv", "--horizon", 2], "--horizon: only for --task forecast"),
        (
            ["train", "--task", "classify", "--data", "train.tsv", "--test-data", "train.tsv", "--test-fraction", 0.1],
            "--test-data, --test-fraction: got both",
        ),
        (
            ["train", "--task", "tag", "--data", "train.conll", "--val-fraction", 0.5, "--test-fraction", 0.5],
            "leave no training sentences",
        ),
        (
            ["train", "--data", "text.txt", "--test-fraction", 0.1],
            "--test-fraction: only for --task classify, tag or forecast, got --task lm",
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(files, capsys, monkeypatch, args, message):
    monkeypatch.chdir(files)
    code, _, err = run(capsys, *args, "--no-progress")
    assert code == 2
    assert err.count("\n") == 1 and message in err


def test_eval_and_predict_refuse_what_the_checkpoint_cannot_read(files, capsys):
    out = files / "run"
    assert (
        run(
            capsys,
            "train",
            "--task",
            "classify",
            "--data",
            files / "train.tsv",
            "--epochs",
            1,
            "--hidden",
            4,
            "--embed",
            4,
            "--no-progress",
            "--out",
            out,
        )[0]
        == 0
    )
    (files / "odd.tsv").write_text("meh\tan unseen label\n")
    code, _, err = run(capsys, "eval", out / "model.rnnfast", "--data", files / "odd.tsv", "--threads", 1)
    assert code == 0 and "'meh'" in err
    code, _, err = run(capsys, "predict", out / "model.rnnfast", "--data", files / "train.tsv", "--steps", 3)
    assert code == 2 and "--steps: only for forecast checkpoints" in err
    lm = files / "lm"
    assert (
        run(
            capsys,
            "train",
            "--data",
            files / "text.txt",
            "--hidden",
            8,
            "--layers",
            1,
            "--seq-len",
            8,
            "--batch-size",
            2,
            "--no-progress",
            "--out",
            lm,
        )[0]
        == 0
    )
    code, _, err = run(capsys, "predict", lm / "model.rnnfast", "--data", files / "text.txt")
    assert code == 2 and "is a language model" in err
