"""SequenceClassifier, SequenceTagger and Forecaster: float64 gradient checks of every new layer, padding
invariance, PyTorch as the reference for pooling over packed sequences, learning on generated data whose answers
are known, checkpoints and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from numeric_checks import central_differences

import rnnfast as rf
from rnnfast import data
from rnnfast.tasks.classify import ClassificationTask
from rnnfast.tasks.forecast import ForecastTask
from rnnfast.tasks.tag import TaggingTask, TaggingVocabulary, predict_tags
from rnnfast.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


# ----- tiny models and batches ------------------------------------------------------------------------------
T, B = 5, 3
LENGTHS = np.array([5, 2, 4])
V, E, H = 6, 3, 3


def rng(seed=0):
    return np.random.default_rng(seed)


def classifier(pooling="last", bidirectional=False, features=False, **kwargs):
    inputs = dict(input_size=E) if features else dict(vocab_size=V, embed_dim=E)
    return rf.SequenceClassifier(
        3, hidden_size=H, bidirectional=bidirectional, pooling=pooling, dtype="float64", seed=1, **inputs, **kwargs
    )


def tagger(crf=False, extras=True, **kwargs):
    extra = (
        dict(
            feature_vocab_sizes=(3, 2),
            feature_dim=2,
            char_features=True,
            char_vocab_size=5,
            char_embed_dim=2,
            char_hidden_size=2,
        )
        if extras
        else {}
    )
    return rf.SequenceTagger(
        4, vocab_size=V, embed_dim=E, hidden_size=H, crf=crf, dtype="float64", seed=2, **extra, **kwargs
    )


def token_batch(seed=0):
    return rng(seed).integers(0, V, size=(T, B))


def feature_batch(seed=0):
    return rng(seed).normal(size=(T, B, E))


def tag_extras(seed=0):
    """Feature ids (T, B, 2) and character ids (T, B, 4): each word 1..4 characters, then padding."""
    r = rng(seed)
    features = np.stack([r.integers(0, 3, (T, B)), r.integers(0, 2, (T, B))], axis=2)
    chars = np.zeros((T, B, 4), dtype=np.int64)
    for t in range(T):
        for b in range(B):
            n = r.integers(1, 5)
            chars[t, b, :n] = r.integers(1, 5, n)
    return features, chars


# ----- gradient checks --------------------------------------------------------------------------------------
def assert_gradients_match(model, loss_fn, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Every parameter's analytic gradient (training mode) against central differences of the loss."""
    model.train()
    model.zero_grad()
    loss_fn()
    model.backward()
    analytic = {name: grad.copy() for name, grad in model.grads.items()}
    model.eval()  # the numeric side runs the inference path, so the two paths are checked against each other
    for name, value in model.named_parameters().items():
        np.testing.assert_allclose(
            analytic[name], central_differences(loss_fn, value, eps), rtol=rtol, atol=atol, err_msg=name
        )
    assert any(np.abs(g).max() > 0 for g in analytic.values())


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("features", [False, True])
def test_classifier_gradients(pooling, bidirectional, features):
    model = classifier(pooling, bidirectional, features)
    inputs = feature_batch() if features else token_batch()
    labels = np.array([0, 2, 1])
    assert_gradients_match(model, lambda: model.loss(inputs, labels, LENGTHS))


@pytest.mark.parametrize("crf", [False, True])
def test_tagger_gradients_with_feature_and_character_embeddings(crf):
    model = tagger(crf=crf)
    features, chars = tag_extras()
    tags = rng(3).integers(0, 4, size=(T, B))
    assert_gradients_match(model, lambda: model.loss(token_batch(), tags, LENGTHS, features, chars))
    assert np.abs(model.grads["char_rnn.weight_ih_l0_reverse"]).max() > 0
    assert np.abs(model.grads["feature_embedding1.weight"]).max() > 0


def test_tagger_gradients_two_layers_real_valued_inputs():
    model = rf.SequenceTagger(
        3, input_size=2, hidden_size=H, num_layers=2, cell="gru", crf=True, dtype="float64", seed=0
    )
    inputs = rng(1).normal(size=(T, B, 2))
    tags = rng(2).integers(0, 3, size=(T, B))
    assert_gradients_match(model, lambda: model.loss(inputs, tags, LENGTHS))


@pytest.mark.parametrize("loss", ["mse", "mae"])
@pytest.mark.parametrize("input_size", [1, 2])
def test_forecaster_gradients(loss, input_size):
    model = rf.Forecaster(input_size, hidden_size=H, horizon=2, loss=loss, dtype="float64", seed=0)
    model.fit_scaler(rng(0).normal(3.0, 2.0, size=(50, input_size)))
    history = rng(1).normal(3.0, 2.0, size=(T, B, input_size))
    targets = rng(2).normal(3.0, 2.0, size=(2, B, input_size))
    assert_gradients_match(model, lambda: model.loss(history, targets, LENGTHS))


# ----- padding invariance -----------------------------------------------------------------------------------
def padded_pair(first, second, junk):
    """Two sequences (T_i, ...) padded into one (T, 2, ...) batch with ``junk`` in the padding."""
    T_max = max(len(first), len(second))
    out = np.array([junk(T_max) for _ in range(2)]).swapaxes(0, 1).copy()
    out[: len(first), 0] = first
    out[: len(second), 1] = second
    return out, np.array([len(first), len(second)])


def gradients(model, loss_fn) -> dict:
    model.train()
    model.zero_grad()
    loss_fn()
    model.backward()
    return {name: grad.copy() for name, grad in model.grads.items()}


def assert_batch_gradient_is_weighted_sum(batch, parts, weights):
    for name in batch:
        expected = sum(w * p[name] for w, p in zip(weights, parts))
        np.testing.assert_allclose(batch[name], expected, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_padding_invariance(pooling):
    model = classifier(pooling, bidirectional=True)
    a, b = rng(1).integers(0, V, 5), rng(2).integers(0, V, 3)
    batch, lengths = padded_pair(a, b, lambda n: rng(9).integers(0, V, n))
    labels = np.array([1, 2])
    alone_a = gradients(model, lambda: model.loss(a[:, None], labels[:1]))
    alone_b = gradients(model, lambda: model.loss(b[:, None], labels[1:]))
    together = gradients(model, lambda: model.loss(batch, labels, lengths))
    assert_batch_gradient_is_weighted_sum(together, [alone_a, alone_b], [0.5, 0.5])
    probs = model.predict_proba(batch, lengths)
    np.testing.assert_allclose(probs[1], model.predict_proba(b[:, None])[0], rtol=1e-12)
    np.testing.assert_allclose(probs[0], model.predict_proba(a[:, None])[0], rtol=1e-12)


@pytest.mark.parametrize("crf", [False, True])
def test_tagger_padding_invariance(crf):
    model = tagger(crf=crf)
    features, chars = tag_extras(4)
    words = rng(5).integers(0, V, (T, B))
    tags = rng(6).integers(0, 4, (T, B))
    pieces = [(words[:n, k], features[:n, k], chars[:n, k], tags[:n, k]) for k, n in ((0, 5), (1, 3))]
    batch = [
        padded_pair(pieces[0][i], pieces[1][i], lambda n, i=i: np.full((n,) + pieces[0][i].shape[1:], 1))[0]
        for i in range(4)
    ]
    lengths = np.array([5, 3])
    alone = [
        gradients(model, lambda p=p: model.loss(p[0][:, None], p[3][:, None], None, p[1][:, None], p[2][:, None]))
        for p in pieces
    ]
    together = gradients(model, lambda: model.loss(batch[0], batch[3], lengths, batch[1], batch[2]))
    assert_batch_gradient_is_weighted_sum(together, alone, [5 / 8, 3 / 8])
    predicted = model.predict(batch[0], lengths, batch[1], batch[2])
    for k, p in enumerate(pieces):
        single = model.predict(p[0][:, None], None, p[1][:, None], p[2][:, None])[:, 0]
        assert predicted[: len(single), k].tolist() == single.tolist()
        assert (predicted[len(single) :, k] == -1).all()


def test_forecaster_padding_invariance():
    model = rf.Forecaster(1, hidden_size=H, horizon=2, dtype="float64", seed=0)
    a, b = rng(1).normal(size=6), rng(2).normal(size=4)
    batch, lengths = padded_pair(a, b, lambda n: np.full(n, 50.0))
    ya, yb = rng(3).normal(size=(2, 1)), rng(4).normal(size=(2, 1))
    alone = [gradients(model, lambda: model.loss(a[:, None], ya)), gradients(model, lambda: model.loss(b[:, None], yb))]
    together = gradients(model, lambda: model.loss(batch, np.concatenate([ya, yb], axis=1), lengths))
    assert_batch_gradient_is_weighted_sum(together, alone, [0.5, 0.5])
    model.eval()
    np.testing.assert_allclose(model.forward(batch, lengths)[:, 1, 0], model.predict(b, 2), rtol=1e-12)


# ----- PyTorch as the reference for pooling over packed sequences -------------------------------------------
@pytest.mark.parametrize("pooling, bidirectional", [("last", False), ("last", True), ("mean", True), ("max", True)])
def test_classifier_matches_pytorch_packed_sequences(torch, pooling, bidirectional):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = rf.SequenceClassifier(
        3,
        vocab_size=V,
        embed_dim=E,
        hidden_size=4,
        bidirectional=bidirectional,
        pooling=pooling,
        dtype="float64",
        seed=3,
    ).eval()
    ids = token_batch(7)
    params = model.named_parameters()
    lstm = torch.nn.LSTM(E, 4, bidirectional=bidirectional).double()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            p.copy_(torch.from_numpy(params[f"rnn.{name}"]))
    x = torch.from_numpy(params["embedding.weight"][ids])
    packed = pack_padded_sequence(x, torch.from_numpy(LENGTHS), enforce_sorted=False)
    with torch.no_grad():
        out, (h_n, _) = lstm(packed)
        if pooling == "last":
            pooled = torch.cat([h_n[-2], h_n[-1]], dim=1) if bidirectional else h_n[-1]
        elif pooling == "mean":
            y, _ = pad_packed_sequence(out)
            pooled = y.sum(0) / torch.from_numpy(LENGTHS)[:, None]
        else:
            y, _ = pad_packed_sequence(out, padding_value=-float("inf"))
            pooled = y.max(0).values
    expected = pooled.numpy() @ params["head.weight"].T + params["head.bias"]
    np.testing.assert_allclose(model.forward(ids, LENGTHS), expected, rtol=1e-10, atol=1e-12)


# ----- learning on generated data ---------------------------------------------------------------------------
def order_rule(n: int, seed: int):
    """Token 0 and token 1 each appear once among tokens 2..9; the label is 1 when 0 comes first."""
    r = rng(seed)
    sequences, labels = [], []
    for _ in range(n):
        length = int(r.integers(5, 13))
        s = r.integers(2, 10, length)
        i, j = r.choice(length, 2, replace=False)
        s[i], s[j] = 0, 1
        sequences.append(s)
        labels.append(int(i < j))
    return sequences, np.array(labels)


def test_classifier_learns_an_order_rule(tmp_path):
    task = ClassificationTask(order_rule(600, 0), order_rule(200, 1), batch_size=16, test=order_rule(200, 2))
    model = rf.SequenceClassifier(2, vocab_size=10, embed_dim=8, hidden_size=24, seed=0)
    records = train(model, task, TrainConfig(epochs=3, lr=1e-2, out=str(tmp_path), progress=False))
    assert records[-1]["test_accuracy"] > 0.95  # chance is 0.5
    sequences, labels = order_rule(50, 3)
    padded, lengths = data.pad_batch(sequences)
    assert (model.predict(padded, lengths) == labels).mean() > 0.95


DETERMINERS, ADJECTIVES = ["the", "a", "every"], ["big", "old", "red"]
NOUNS, VERBS = ["dog", "park", "idea"], ["sees", "likes"]
AMBIGUOUS = ["run", "walk", "fly"]  # nouns after a determiner or adjective, verbs after a noun phrase


def grammar_sentences(n: int, seed: int) -> data.TaggedSentences:
    """S -> NP V NP [P NP] '.', NP -> Det Adj* N; the chunk tags follow from the grammar, and the ambiguous
    words can only be tagged from their context."""
    r = rng(seed)

    def noun_phrase():
        words = [r.choice(DETERMINERS)] + list(r.choice(ADJECTIVES, r.integers(0, 3))) + [r.choice(NOUNS + AMBIGUOUS)]
        return [(w, "B-NP" if k == 0 else "I-NP") for k, w in enumerate(words)]

    words, tags = [], []
    for _ in range(n):
        s = noun_phrase() + [(r.choice(VERBS + AMBIGUOUS), "B-VP")] + noun_phrase()
        if r.random() < 0.5:
            s += [("near", "B-PP")] + noun_phrase()
        s.append((".", "O"))
        words.append([str(w) for w, _ in s])
        tags.append([t for _, t in s])
    return data.TaggedSentences(words, tags, [[[] for _ in s] for s in words], [[""] * len(s) for s in words])


@pytest.mark.parametrize("crf", [False, True])
def test_tagger_learns_a_grammar_from_context(tmp_path, crf):
    train_s, val_s, test_s = grammar_sentences(300, 0), grammar_sentences(60, 1), grammar_sentences(100, 2)
    vocab = TaggingVocabulary.fit(train_s)
    task = TaggingTask(
        vocab.encode(train_s),
        vocab.encode(val_s),
        vocab.tags.tokens,
        batch_size=16,
        test=vocab.encode(test_s),
        scheme=vocab.chunk_scheme,
    )
    model = rf.SequenceTagger(
        len(vocab.tags), vocab_size=len(vocab.words), embed_dim=16, hidden_size=24, crf=crf, seed=0
    )
    records = train(model, task, TrainConfig(epochs=3, lr=1e-2, out=str(tmp_path), progress=False))
    assert records[-1]["test_chunk_f1"] > 0.97
    # The ambiguous words are tagged by their position: verb after a noun phrase, noun inside one.
    encoded = vocab.encode(test_s)
    predicted = predict_tags(model, encoded)
    ambiguous = [
        (vocab.tags.tokens[p], g)
        for s, ps, gs in zip(test_s.words, predicted, test_s.tags)
        for w, p, g in zip(s, ps, gs)
        if w in AMBIGUOUS
    ]
    assert len({g for _, g in ambiguous}) == 2
    assert np.mean([p == g for p, g in ambiguous]) > 0.95


def suffix_sentences(n: int, seed: int, stems) -> data.TaggedSentences:
    """Random words whose tag is given by their suffix only: stem+'tion' is N, stem+'ize' is V."""
    r = rng(seed)
    words, tags = [], []
    for _ in range(n):
        length = int(r.integers(3, 8))
        kinds = r.integers(0, 2, length)
        words.append([str(r.choice(stems)) + ("tion" if k else "ize") for k in kinds])
        tags.append(["N" if k else "V" for k in kinds])
    return data.TaggedSentences(words, tags, [[[] for _ in s] for s in words], [[""] * len(s) for s in words])


def test_character_features_tag_unknown_words(tmp_path):
    letters = list("bcdfgklmnprstv")
    stems = ["".join(rng(k).choice(letters, 3)) + v for k, v in enumerate("aeiouaeiouaeiouaeiou" * 2)]
    known, unseen = stems[:20], stems[20:]
    train_s, val_s = suffix_sentences(300, 0, known), suffix_sentences(40, 1, known)
    test_s = suffix_sentences(100, 2, unseen)
    accuracy = {}
    for char_features in (False, True):
        vocab = TaggingVocabulary.fit(train_s, char_features=char_features)
        test_encoded = vocab.encode(test_s)
        assert (np.concatenate(test_encoded.words) == 0).all()  # every test word is unknown to the vocabulary
        task = TaggingTask(
            vocab.encode(train_s), vocab.encode(val_s), vocab.tags.tokens, batch_size=16, test=test_encoded
        )
        model = rf.SequenceTagger(
            2,
            vocab_size=len(vocab.words),
            embed_dim=8,
            hidden_size=8,
            char_features=char_features,
            char_vocab_size=len(vocab.chars) if char_features else None,
            seed=0,
        )
        records = train(
            model, task, TrainConfig(epochs=4, lr=1e-2, out=str(tmp_path / str(char_features)), progress=False)
        )
        accuracy[char_features] = records[-1]["test_accuracy"]
    assert accuracy[True] > 0.95
    assert accuracy[False] < 0.7  # without characters, an unknown word's tag is a guess


def noisy_sine(n=1200, period=20, noise=0.1, seed=0):
    t = np.arange(n)
    return np.sin(2 * np.pi * t / period) + rng(seed).normal(0, noise, n), np.sin(2 * np.pi * t / period)


def test_forecaster_learns_a_noisy_sine(tmp_path):
    values, clean = noisy_sine()
    task = ForecastTask(values, window=40, horizon=5, batch_size=32, season=20)
    model = rf.Forecaster(1, hidden_size=32, horizon=5, seed=0)
    model.fit_scaler(task.train_values)
    records = train(model, task, TrainConfig(epochs=8, lr=5e-3, out=str(tmp_path), progress=False))
    test = records[-1]
    assert test["test_rmse"] < 0.14  # the noise alone is 0.1; the seasonal naive forecast pays it twice
    assert test["test_rmse"] < test["test_seasonal_naive_rmse"]
    assert test["test_rmse"] < 0.3 * test["test_naive_rmse"]
    # Recursive forecasts, two periods past the history, stay on the clean curve.
    forecast = model.predict(values[-80:-40], steps=40)
    assert forecast.shape == (40,)
    assert rf.metrics.rmse(clean[-40:], forecast) < 0.2


def test_forecaster_scaling_follows_a_trend_outside_the_training_range(tmp_path):
    t = np.arange(600, dtype=np.float64)
    values = 0.5 * t + 3 * np.sin(2 * np.pi * t / 12)  # the test part lies far above every training value
    task = ForecastTask(values, window=24, horizon=1, batch_size=32, season=12)
    model = rf.Forecaster(1, hidden_size=16, seed=0)
    model.fit_scaler(task.train_values)
    assert model.mean[0] == pytest.approx(task.train_values.mean())
    records = train(model, task, TrainConfig(epochs=10, lr=5e-3, out=str(tmp_path), progress=False))
    assert records[-1]["test_rmse"] < 0.5 * records[-1]["test_seasonal_naive_rmse"]


# ----- the module protocol: optimizers, checkpoints, modes --------------------------------------------------
def test_optimizers_and_clipping_act_on_the_new_models():
    model = tagger(crf=True)
    features, chars = tag_extras()
    tags = rng(3).integers(0, 4, size=(T, B))
    model.zero_grad()
    model.loss(token_batch(), tags, LENGTHS, features, chars)
    model.backward()
    before = model.parameters().data.copy()
    norm = rf.clip_grad_norm(model, 1e-3)
    assert norm > 1e-3
    assert np.sqrt((model.parameters().grad ** 2).sum()) == pytest.approx(1e-3, rel=1e-4)
    rf.optim.SGD(model, lr=1.0).step()
    np.testing.assert_allclose(model.parameters().data, before - model.parameters().grad)
    assert model.named_parameters()["crf_layer.transitions"].base is model.parameters().data


@pytest.mark.parametrize(
    "make, call",
    [
        (lambda: classifier("max", True), lambda m: m.predict_proba(token_batch(), LENGTHS)),
        (lambda: tagger(crf=True), lambda m: m.predict(token_batch(), LENGTHS, *tag_extras())),
        (lambda: tagger(crf=False, extras=False, cell="gru"), lambda m: m.predict(token_batch(), LENGTHS)),
    ],
)
def test_models_round_trip_through_checkpoints(tmp_path, make, call):
    model = make()
    rf.save(tmp_path / "m.rnnfast", model)
    loaded = rf.load(tmp_path / "m.rnnfast").model
    assert type(loaded) is type(model) and loaded.config() == model.config()
    np.testing.assert_array_equal(call(loaded), call(model))


def test_forecaster_checkpoint_keeps_the_scaling(tmp_path):
    model = rf.Forecaster(2, hidden_size=4, horizon=3, loss="mae", seed=0)
    model.fit_scaler(rng(0).normal([10.0, -5.0], [2.0, 0.5], size=(100, 2)))
    rf.save(tmp_path / "f.rnnfast", model)
    loaded = rf.load(tmp_path / "f.rnnfast").model
    np.testing.assert_array_equal(loaded.mean, model.mean)
    np.testing.assert_array_equal(loaded.std, model.std)
    history = rng(1).normal([10.0, -5.0], [2.0, 0.5], size=(12, 2))
    np.testing.assert_array_equal(loaded.predict(history, 7), model.predict(history, 7))
    assert loaded.predict(history, 7).shape == (7, 2)


def test_predict_uses_evaluation_mode_and_restores_the_mode():
    model = classifier(dropout=0.5)
    ids = token_batch()
    model.train()
    first = model.predict_proba(ids, LENGTHS)
    assert model.training and model.rnn.training
    np.testing.assert_array_equal(model.predict_proba(ids, LENGTHS), first)  # no dropout noise
    assert not np.array_equal(model.forward(ids, LENGTHS), model.forward(ids, LENGTHS))  # training mode has it


def test_recursive_forecast_feeds_forecasts_back():
    model = rf.Forecaster(1, hidden_size=4, horizon=2, seed=0).eval()
    history = np.linspace(0.0, 1.0, 10)
    five = model.predict(history, 5)
    np.testing.assert_array_equal(five[:2], model.predict(history))
    window = np.concatenate([history, five[:2]])[2:]
    np.testing.assert_allclose(five[2:4], model.predict(window), rtol=1e-12)


# ----- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: rf.SequenceClassifier(2), "vocab_size, input_size: got None and None, expected exactly one"),
        (lambda: rf.SequenceClassifier(2, vocab_size=5, input_size=3), "expected exactly one"),
        (lambda: rf.SequenceClassifier(1, vocab_size=5), "num_classes: got 1"),
        (lambda: rf.SequenceClassifier(2, vocab_size=5, pooling="sum"), "pooling: got 'sum'"),
        (lambda: rf.SequenceClassifier(2, vocab_size=5, cell="transformer"), "cell: got 'transformer'"),
        (lambda: rf.SequenceTagger(3, vocab_size=5, char_features=True), "char_vocab_size: got None"),
        (lambda: rf.SequenceTagger(3, vocab_size=5, feature_vocab_sizes=(4, 0)), r"feature_vocab_sizes\[1\]: got 0"),
        (lambda: rf.Forecaster(horizon=0), "horizon: got 0"),
        (lambda: rf.Forecaster(loss="huber"), "loss: got 'huber'"),
        (lambda: rf.Forecaster(2, std=[1.0, 0.0]), r"std: got \[1.0, 0.0\], expected values > 0"),
        (lambda: rf.Forecaster(2, mean=[1.0, 2.0, 3.0]), r"mean: got shape \(3,\), expected \(2,\)"),
    ],
)
def test_bad_constructor_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: classifier().loss(token_batch(), [0, 1, 3], LENGTHS), r"labels: got 3, expected values in 0\.\.2"),
        (lambda: classifier().loss(token_batch(), [0, 1], LENGTHS), r"labels: got shape \(2,\), expected \(3,\)"),
        (lambda: classifier().forward(token_batch(), [5, 6, 1]), r"lengths: got 6, expected values in 1\.\.5"),
        (lambda: classifier().forward(token_batch(), [5, 5]), r"lengths: got shape \(2,\), expected \(3,\)"),
        (lambda: classifier().forward(token_batch() + V), r"inputs: got \d+, expected values in 0\.\.5"),
        (lambda: classifier(features=True).forward(token_batch()), "inputs: got dtype int64|inputs: got shape"),
        (lambda: classifier(features=True).forward(np.full((T, B, E), np.inf)), "inputs: contains 45 NaN or Inf"),
        (lambda: tagger().forward(token_batch(), LENGTHS, None, tag_extras()[1]), "features: got None"),
        (lambda: tagger().forward(token_batch(), LENGTHS, tag_extras()[0], None), "chars: got None"),
        (
            lambda: tagger().forward(token_batch(), LENGTHS, tag_extras()[0][:, :, :1], tag_extras()[1]),
            r"features: got shape \(5, 3, 1\), expected \(5, 3, 2\)",
        ),
        (
            lambda: tagger().forward(token_batch(), LENGTHS, tag_extras()[0], np.zeros((T, B, 2), np.int64)),
            r"chars: the word at \(t=0, b=0\) has no characters",
        ),
        (
            lambda: tagger().forward(token_batch(), LENGTHS, tag_extras()[0], np.tile([1, 0, 2], (T, B, 1))),
            r"chars: the word at \(t=0, b=0\) has a 0 \(padding\) between its characters",
        ),
        (lambda: tagger(extras=False).forward(token_batch(), LENGTHS, tag_extras()[0]), "features: got an array"),
        (
            lambda: tagger(extras=False).loss(token_batch(), np.full((T, B), 4), LENGTHS),
            r"tags: got 4, expected values in 0\.\.3",
        ),
        (lambda: rf.Forecaster().loss(np.zeros((T, B)), np.zeros((2, B))), r"targets: got shape \(2, 3\)"),
        (lambda: rf.Forecaster().forward(np.zeros((T, B, 2))), r"history: got shape \(5, 3, 2\), expected \(T, B, 1\)"),
        (lambda: rf.Forecaster(2).predict(np.zeros(T)), r"history: got shape \(5,\), expected \(T, 2\)"),
        (lambda: rf.Forecaster().fit_scaler([[1.0, 2.0]]), r"values: got shape \(1, 2\), expected \(N, 1\)"),
        (lambda: rf.Forecaster().predict(np.zeros(T), steps=0), "steps: got 0"),
    ],
)
def test_bad_call_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize(
    "model, call",
    [
        (classifier(), lambda m: m.loss(token_batch(), [0, 1, 2], LENGTHS)),
        (tagger(crf=True), lambda m: m.loss(token_batch(), np.zeros((T, B)), LENGTHS, *tag_extras())),
        (tagger(crf=False), lambda m: m.loss(token_batch(), np.zeros((T, B)), LENGTHS, *tag_extras())),
        (rf.Forecaster(), lambda m: m.loss(np.zeros((T, B)), np.zeros((1, B)))),
    ],
)
def test_backward_needs_a_training_mode_loss(model, call):
    with pytest.raises(RuntimeError, match="backward: call loss"):
        model.backward()
    model.eval()
    call(model)
    with pytest.raises(RuntimeError, match="backward: call loss"):
        model.backward()
    model.train()
    call(model)
    model.backward()
    with pytest.raises(RuntimeError, match="backward: call loss"):
        model.backward()
