"""Metrics against hand-worked values; chunk F1 also against an independent span-matching reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnfast import metrics

# ----- classification ---------------------------------------------------------------------------------------
# A worked 3-class example: rows are true classes, columns predictions.
#            pred 0  1  2
#   true 0      2  1  1
#   true 1      1  2  0
#   true 2      0  1  2
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]


def test_accuracy_counts_matches():
    assert metrics.accuracy([0, 1, 2, 2, 1], [0, 2, 2, 2, 1]) == pytest.approx(0.8)
    assert metrics.accuracy(["a", "b"], ["a", "b"]) == 1.0
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)


def test_confusion_matrix_worked_example():
    expected = np.array([[2, 1, 1], [1, 2, 0], [0, 1, 2]])
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, Y_PRED), expected)
    padded = metrics.confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)
    assert padded.shape == (4, 4)
    np.testing.assert_array_equal(padded[:3, :3], expected)
    assert padded[3].sum() == 0 and padded[:, 3].sum() == 0


def test_per_class_scores_worked_example():
    p, r, f1 = metrics.precision_recall_f1(Y_TRUE, Y_PRED, average=None)
    # precision = diagonal / column sums (3, 4, 3); recall = diagonal / row sums (4, 3, 3)
    np.testing.assert_allclose(p, [2 / 3, 2 / 4, 2 / 3])
    np.testing.assert_allclose(r, [2 / 4, 2 / 3, 2 / 3])
    # F1 = 2 tp / (2 tp + fp + fn)
    np.testing.assert_allclose(f1, [4 / 7, 4 / 7, 4 / 6])


def test_macro_averages_per_class_scores():
    p, r, f1 = metrics.precision_recall_f1(Y_TRUE, Y_PRED, average="macro")
    assert p == pytest.approx(11 / 18)
    assert r == pytest.approx(11 / 18)
    assert f1 == pytest.approx(38 / 63)  # mean of 4/7, 4/7, 2/3, not F1 of the mean precision and recall


def test_micro_pools_counts_and_equals_accuracy_over_all_labels():
    assert metrics.precision_recall_f1(Y_TRUE, Y_PRED, average="micro") == pytest.approx((0.6, 0.6, 0.6))
    # Over classes 0 and 2 only: tp 2+2, predicted 3+3, true 4+3.
    p, r, f1 = metrics.precision_recall_f1(Y_TRUE, Y_PRED, average="micro", labels=[0, 2])
    assert (p, r, f1) == pytest.approx((4 / 6, 4 / 7, 8 / 13))


def test_labels_choose_and_order_classes():
    p, r, _ = metrics.precision_recall_f1(Y_TRUE, Y_PRED, average=None, labels=[2, 0])
    np.testing.assert_allclose(p, [2 / 3, 2 / 3])
    np.testing.assert_allclose(r, [2 / 3, 2 / 4])


def test_zero_division_gives_zero():
    # Class 1 is never predicted: its precision, recall and F1 are 0. Class 0: tp 2, predicted 3, true 2.
    p, r, f1 = metrics.precision_recall_f1([0, 0, 1], [0, 0, 0], average=None)
    np.testing.assert_allclose(p, [2 / 3, 0.0])
    np.testing.assert_allclose(r, [1.0, 0.0])
    np.testing.assert_allclose(f1, [0.8, 0.0])
    assert metrics.precision_recall_f1([0, 0, 1], [0, 0, 0]) == pytest.approx((1 / 3, 0.5, 0.4))
    # A requested label that never occurs counts as zeros in the macro mean.
    assert metrics.precision_recall_f1([0, 1], [0, 1], labels=[0, 1, 5]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_string_labels():
    p, r, f1 = metrics.precision_recall_f1(["cat", "dog", "dog"], ["cat", "cat", "dog"], average=None)
    # sorted labels: cat (tp 1, predicted 2, true 1), dog (tp 1, predicted 1, true 2)
    np.testing.assert_allclose(p, [0.5, 1.0])
    np.testing.assert_allclose(r, [1.0, 0.5])


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.accuracy([0, 1], [0, 1, 1]),
        lambda: metrics.precision_recall_f1([0, 1, 2], [0, 1]),
        lambda: metrics.confusion_matrix([0, 1], [0]),
    ],
)
def test_length_mismatch_names_y_pred(call):
    with pytest.raises(ValueError, match="y_pred"):
        call()


def test_classification_bad_input():
    with pytest.raises(ValueError, match="y_true.*empty"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="y_true.*NaN"):
        metrics.accuracy([0.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="y_pred.*1-d"):
        metrics.accuracy([0, 1], [[0, 1]])
    with pytest.raises(TypeError, match="y_pred"):
        metrics.accuracy(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="average"):
        metrics.precision_recall_f1([0], [0], average="weighted")
    with pytest.raises(ValueError, match="labels"):
        metrics.precision_recall_f1([0], [0], labels=[0, 0])
    with pytest.raises(ValueError, match="y_pred.*0..1"):
        metrics.confusion_matrix([0, 1], [0, 2], num_classes=2)
    with pytest.raises(ValueError, match="y_true"):
        metrics.confusion_matrix([-1, 1], [0, 1])
    with pytest.raises(TypeError, match="y_true.*string"):
        metrics.confusion_matrix(["a"], ["a"])


# ----- chunk F1 (conlleval) ---------------------------------------------------------------------------------
def scores(result):
    return result["precision"], result["recall"], result["f1"]


def test_chunk_starting_with_i_is_a_chunk():
    result = metrics.chunk_f1([["I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    assert scores(result) == (1.0, 1.0, 1.0)
    assert result["per_type"] == {"PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}}


def test_adjacent_same_type_chunks_are_two():
    # truth: PER(0), PER(1); prediction: one chunk PER(0-1), which matches neither.
    result = metrics.chunk_f1([["B-PER", "B-PER"]], [["B-PER", "I-PER"]])
    assert scores(result) == (0.0, 0.0, 0.0)
    assert result["per_type"]["PER"]["support"] == 2


def test_type_change_inside_i_tags_starts_a_new_chunk():
    # B-LOC I-PER is LOC(0) + PER(1), the same chunks as B-LOC B-PER.
    result = metrics.chunk_f1([["B-LOC", "I-PER"]], [["B-LOC", "B-PER"]])
    assert scores(result) == (1.0, 1.0, 1.0)
    assert set(result["per_type"]) == {"LOC", "PER"}


def test_span_must_match_exactly():
    assert scores(metrics.chunk_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])) == (0.0, 0.0, 0.0)
    wrong_type = metrics.chunk_f1([["B-PER", "I-PER"]], [["B-ORG", "I-ORG"]])
    assert scores(wrong_type) == (0.0, 0.0, 0.0)
    assert wrong_type["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_sentence_end_closes_chunks():
    # Without the break, B-PER | I-PER would be one chunk in the truth and two in the prediction.
    true = [["O", "B-PER"], ["I-PER", "O"]]
    pred = [["O", "B-PER"], ["B-PER", "O"]]
    result = metrics.chunk_f1(true, pred)
    assert scores(result) == (1.0, 1.0, 1.0)
    assert result["per_type"]["PER"]["support"] == 2


def test_per_type_numbers():
    true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "O"], ["B-ORG", "O"]]
    # truth: PER(0-1) LOC(3) ORG(5-6) | ORG(0); prediction: PER(0-1) ORG(3) ORG(5) | ORG(0); correct: PER, ORG(0).
    result = metrics.chunk_f1(true, pred)
    assert scores(result) == pytest.approx((2 / 4, 2 / 4, 2 / 4))
    per_type = result["per_type"]
    assert list(per_type) == ["LOC", "ORG", "PER"]
    assert per_type["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    org = per_type["ORG"]
    assert (org["precision"], org["recall"], org["f1"]) == pytest.approx((1 / 3, 1 / 2, 2 / 5))
    assert org["support"] == 2


def test_iob1():
    # IOB1: B- only separates adjacent chunks of one type. truth: ORG(0) PER(2) PER(3); prediction: ORG(0)
    # PER(2-3).
    result = metrics.chunk_f1([["I-ORG", "O", "I-PER", "B-PER"]], [["I-ORG", "O", "I-PER", "I-PER"]], scheme="iob1")
    assert scores(result) == pytest.approx((1 / 2, 1 / 3, 2 / 5))
    assert result["per_type"]["ORG"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert result["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    # conlleval reads IOB1 and IOB2 with the same rules.
    assert (
        metrics.chunk_f1([["I-ORG", "O", "I-PER", "B-PER"]], [["I-ORG", "O", "I-PER", "I-PER"]], scheme="iob2")
        == result
    )


def test_iobes():
    # truth: PER(0) PER(1) LOC(2-3); prediction: PER(0) PER(1-2) LOC(3); only PER(0) matches.
    true = [["S-PER", "S-PER", "B-LOC", "E-LOC", "O"]]
    pred = [["S-PER", "B-PER", "E-PER", "S-LOC", "O"]]
    result = metrics.chunk_f1(true, pred, scheme="iobes")
    assert scores(result) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert result["per_type"]["PER"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert result["per_type"]["LOC"]["support"] == 1 and result["per_type"]["LOC"]["f1"] == 0.0
    # E- closes a chunk: B-X E-X B-X E-X is two chunks, and S-X S-X too.
    two = metrics.chunk_f1(
        [["B-X", "E-X", "B-X", "E-X", "S-X", "S-X"]], [["B-X", "E-X", "B-X", "E-X", "S-X", "S-X"]], scheme="iobes"
    )
    assert two["per_type"]["X"]["support"] == 4


def test_o_only_sentences():
    result = metrics.chunk_f1([["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert scores(result) == (0.0, 0.0, 0.0)
    assert result["per_type"] == {}
    # An O-only sentence changes nothing around it.
    with_o = metrics.chunk_f1([["B-PER"], ["O", "O"], ["B-LOC"]], [["B-PER"], ["O", "O"], ["O"]])
    assert scores(with_o) == pytest.approx((1.0, 0.5, 2 / 3))


def test_hyphen_in_type_is_part_of_the_type():
    result = metrics.chunk_f1([["B-ORG-X", "I-ORG-X"]], [["B-ORG-X", "I-ORG-X"]])
    assert list(result["per_type"]) == ["ORG-X"]


def test_chunk_f1_bad_input():
    with pytest.raises(TypeError, match=r"true_tags\[0\]"):
        metrics.chunk_f1(["B-PER", "O"], ["B-PER", "O"])  # a flat list instead of a list of sentences
    with pytest.raises(ValueError, match=r"pred_tags\[0\]: got 1 tags, expected 2"):
        metrics.chunk_f1([["B-PER", "O"]], [["B-PER"]])
    with pytest.raises(ValueError, match="pred_tags: got 2 sentences"):
        metrics.chunk_f1([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match=r"true_tags\[0\]\[1\].*'S-PER'.*iob2"):
        metrics.chunk_f1([["O", "S-PER"]], [["O", "O"]])
    with pytest.raises(ValueError, match=r"pred_tags\[0\]\[0\].*'PER'"):
        metrics.chunk_f1([["B-PER"]], [["PER"]])
    with pytest.raises(ValueError, match=r"pred_tags\[0\]\[0\]"):
        metrics.chunk_f1([["B-PER"]], [["B-"]])
    with pytest.raises(ValueError, match="true_tags: got no sentences"):
        metrics.chunk_f1([], [])
    with pytest.raises(ValueError, match="true_tags: every sentence is empty"):
        metrics.chunk_f1([[]], [[]])
    with pytest.raises(ValueError, match="scheme"):
        metrics.chunk_f1([["O"]], [["O"]], scheme="bio")


def reference_spans(sentences, scheme):
    """Chunks as (sentence, type, first, last), read left to right: a chunk opens at B-/S-, at an I-/E- that does
    not continue an open chunk of its type, and closes at O, at a new chunk, after E-/S- and at the sentence end."""
    spans = set()
    for s, sentence in enumerate(sentences):
        open_chunk = None  # [type, first]
        for j, tag in enumerate([*sentence, "O"]):
            prefix, _, chunk_type = tag.partition("-")
            continues = open_chunk is not None and open_chunk[0] == chunk_type and prefix in ("I", "E")
            if not continues and open_chunk is not None:
                spans.add((s, open_chunk[0], open_chunk[1], j - 1))
                open_chunk = None
            if prefix != "O" and not continues:
                open_chunk = [chunk_type, j]
            if prefix in ("E", "S") and scheme == "iobes":
                spans.add((s, open_chunk[0], open_chunk[1], j))
                open_chunk = None
    return spans


def all_tags(scheme):
    return ["O"] + [f"{p}-{t}" for p in ("BIES" if scheme == "iobes" else "BI") for t in ("A", "B")]


@st.composite
def tagged_pairs(draw):
    scheme = draw(st.sampled_from(["iob2", "iobes"]))
    tags = st.sampled_from(all_tags(scheme))
    true = draw(st.lists(st.lists(tags, max_size=8), min_size=1, max_size=4).filter(any))
    # Predictions keep about half of the true tags, so that some chunks match.
    pred = [[tag if draw(st.booleans()) else draw(tags) for tag in sentence] for sentence in true]
    return scheme, true, pred


@settings(max_examples=200, deadline=None)
@given(tagged_pairs())
def test_chunk_f1_equals_exact_span_matching(case):
    scheme, true, pred = case
    true_spans, pred_spans = reference_spans(true, scheme), reference_spans(pred, scheme)
    correct = len(true_spans & pred_spans)
    precision = correct / len(pred_spans) if pred_spans else 0.0
    recall = correct / len(true_spans) if true_spans else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    result = metrics.chunk_f1(true, pred, scheme=scheme)
    assert scores(result) == pytest.approx((precision, recall, f1), abs=1e-12)
    for chunk_type, row in result["per_type"].items():
        assert row["support"] == sum(1 for span in true_spans if span[1] == chunk_type)


# ----- language modelling -----------------------------------------------------------------------------------
def test_perplexity_and_bits_per_char():
    assert metrics.perplexity(math.log(50.0)) == pytest.approx(50.0)
    assert metrics.perplexity(0.0) == 1.0
    assert metrics.perplexity(1e4) == math.inf
    assert metrics.bits_per_char(math.log(2.0)) == pytest.approx(1.0)
    # A uniform guess over 65 characters costs log2(65) bits.
    assert metrics.bits_per_char(math.log(65.0)) == pytest.approx(math.log2(65.0))
    assert metrics.bits_per_char(np.float32(1.0)) == pytest.approx(1 / math.log(2))


@pytest.mark.parametrize("fn", [metrics.perplexity, metrics.bits_per_char])
def test_mean_nll_validation(fn):
    with pytest.raises(ValueError, match="mean_nll"):
        fn(-0.1)
    with pytest.raises(ValueError, match="mean_nll"):
        fn(float("nan"))
    with pytest.raises(TypeError, match="mean_nll"):
        fn("1.0")


# ----- forecasting ------------------------------------------------------------------------------------------
def test_forecast_errors_worked_example():
    true, pred = [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]  # errors 1, 0, 2
    assert metrics.rmse(true, pred) == pytest.approx(math.sqrt(5 / 3))
    assert metrics.mae(true, pred) == pytest.approx(1.0)
    assert metrics.mape(true, pred) == pytest.approx((1 / 1 + 0 / 2 + 2 / 3) / 3)
    assert metrics.mape([-2.0], [-1.0]) == pytest.approx(0.5)
    # Every element counts, whatever the shape.
    assert metrics.mae([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 0.0]]) == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [metrics.rmse, metrics.mae, metrics.mape])
def test_forecast_bad_input(fn):
    with pytest.raises(ValueError, match=r"y_pred: got shape \(2,\), expected \(3,\)"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="y_pred.*NaN"):
        fn([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ValueError, match="y_true.*NaN"):
        fn([np.inf, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="y_true.*empty"):
        fn([], [])
    with pytest.raises(TypeError, match="y_true"):
        fn(["a"], [1.0])


def test_mape_refuses_zero_targets():
    with pytest.raises(ValueError, match="y_true.*1 zero.*index 1"):
        metrics.mape([1.0, 0.0, 2.0], [1.0, 0.5, 2.0])
