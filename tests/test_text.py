"""Tokenizers and text reading: hand-worked vocabularies and ids, round trips, PTB and tinyshakespeare facts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnfast.text import CharTokenizer, WordTokenizer, read_text, tokenizer_from_dict


# ----- characters -------------------------------------------------------------------------------------------
def test_char_ids_follow_code_point_order():
    tok = CharTokenizer.fit("hello")
    assert tok.vocab == ("e", "h", "l", "o")
    assert tok.vocab_size == 4
    ids = tok.encode("hello")
    assert ids.dtype == np.int64
    assert ids.tolist() == [1, 0, 2, 2, 3]
    assert tok.decode([1, 0, 2, 2, 3]) == "hello"


def test_char_round_trip_beyond_ascii():
    text = "naïve café ☃\n𝄞 tab\there\r\n\x00"
    tok = CharTokenizer.fit(text)
    assert tok.vocab == tuple(sorted(set(text), key=ord))
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("𝄞").tolist() == [tok.vocab.index("𝄞")]


def test_char_ids_do_not_depend_on_text_order():
    assert CharTokenizer.fit("abc").vocab == CharTokenizer.fit("cba").vocab


def test_char_unknown_character_is_named():
    tok = CharTokenizer.fit("abc")
    with pytest.raises(ValueError, match=r"'z'.*U\+007A.*position 2"):
        tok.encode("abz")


def test_char_empty_text():
    tok = CharTokenizer.fit("ab")
    assert tok.encode("").shape == (0,)
    assert tok.decode([]) == ""
    with pytest.raises(ValueError, match="text"):
        CharTokenizer.fit("")


def test_char_vocabulary_from_constructor_keeps_given_order():
    tok = CharTokenizer(["z", "a", "m"])
    assert tok.encode("amz").tolist() == [1, 2, 0]
    assert tok.decode([0, 1]) == "za"


@pytest.mark.parametrize(
    "chars, error",
    [(["a", "a"], ValueError), (["ab"], ValueError), ([], ValueError), ("abc", TypeError), ([1], TypeError)],
)
def test_char_constructor_rejects_bad_vocabulary(chars, error):
    with pytest.raises(error, match="chars"):
        CharTokenizer(chars)


# ----- words ------------------------------------------------------------------------------------------------
def test_word_ids_by_frequency_then_alphabet():
    tok = WordTokenizer.fit("a b a\nc a b\n")
    # counts: a 3, b 2, c 1; <unk> and <eos> come first.
    assert tok.vocab == ("<unk>", "<eos>", "a", "b", "c")
    assert (tok.unk_id, tok.eos_id) == (0, 1)
    assert tok.encode("a c d\n").tolist() == [2, 4, 0, 1]
    assert tok.decode([2, 3, 1, 4]) == "a b\nc"


def test_word_ties_are_alphabetical_whatever_the_order_of_the_text():
    assert WordTokenizer.fit("pear apple fig\n").vocab == ("<unk>", "<eos>", "apple", "fig", "pear")
    assert WordTokenizer.fit("fig pear apple\n").vocab == WordTokenizer.fit("pear apple fig\n").vocab


def test_word_eos_at_each_newline_and_whitespace_normalized():
    tok = WordTokenizer.fit("x y\n")
    assert tok.vocab == ("<unk>", "<eos>", "x", "y")
    assert tok.encode("  x\t y \r\n\ny").tolist() == [2, 3, 1, 1, 3]
    assert tok.encode("x y").tolist() == [2, 3]  # no newline at the end, no <eos>
    assert tok.decode(tok.encode("  x\t y \r\n\ny")) == "x y\n\ny"


def test_word_unk_already_in_text_is_the_same_token():
    text = " the <unk> sat\n the cat <unk>\n"
    tok = WordTokenizer.fit(text)
    assert tok.vocab.count("<unk>") == 1
    # the, <unk>, sat, cat plus <eos>
    assert tok.vocab_size == 5
    ids = tok.encode(text)
    assert (ids == tok.unk_id).sum() == 2
    assert tok.encode("<unk> dog").tolist() == [tok.unk_id, tok.unk_id]


def test_word_max_vocab_keeps_most_frequent():
    text = "a a a b b c\n"
    tok = WordTokenizer.fit(text, max_vocab=3)
    assert tok.vocab == ("<unk>", "<eos>", "a")
    assert tok.encode("a b c\n").tolist() == [2, 0, 0, 1]
    assert WordTokenizer.fit(text, max_vocab=100).vocab_size == 5


def test_word_min_count_drops_rare_words():
    tok = WordTokenizer.fit("a a a b b c\n", min_count=2)
    assert tok.vocab == ("<unk>", "<eos>", "a", "b")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_vocab": 1}, ValueError),
        ({"max_vocab": 2.5}, TypeError),
        ({"min_count": 0}, ValueError),
        ({"min_count": True}, TypeError),
    ],
)
def test_word_fit_rejects_bad_limits(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        WordTokenizer.fit("a b\n", **kwargs)


@pytest.mark.parametrize("text, error", [("", ValueError), (" \t ", ValueError), (b"a b", TypeError)])
def test_word_fit_rejects_texts_without_words(text, error):
    with pytest.raises(error, match="text"):
        WordTokenizer.fit(text)


@pytest.mark.parametrize(
    "tokens",
    [["<unk>", "a"], ["<eos>", "a"], ["<unk>", "<eos>", "a b"], ["<unk>", "<eos>", ""], ["<unk>", "<eos>", "a", "a"]],
)
def test_word_constructor_rejects_bad_vocabulary(tokens):
    with pytest.raises(ValueError, match="tokens"):
        WordTokenizer(tokens)


# ----- decode and serialization -----------------------------------------------------------------------------
@pytest.mark.parametrize("tok", [CharTokenizer.fit("abc"), WordTokenizer.fit("a b c\n")])
def test_decode_rejects_bad_ids(tok):
    with pytest.raises(ValueError, match=r"ids: got 5"):
        tok.decode([0, 5])
    with pytest.raises(ValueError, match=r"ids: got -1"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="ids"):
        tok.decode([0.5])
    with pytest.raises(ValueError, match="ids"):
        tok.decode([[0, 1]])
    assert tok.decode(np.array([2, 0], dtype=np.uint8)) == tok.decode([2, 0])


@pytest.mark.parametrize("tok", [CharTokenizer.fit("héllo\n"), WordTokenizer.fit("the cat\nthe dog\n")])
def test_to_dict_round_trips_through_json(tok):
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert type(again) is type(tok)
    assert again == tok
    assert again.vocab == tok.vocab
    sample = "hé\nllo" if isinstance(tok, CharTokenizer) else "the dog\n"
    assert again.encode(sample).tolist() == tok.encode(sample).tolist()


def test_tokenizers_of_different_kinds_are_not_equal():
    assert CharTokenizer.fit("ab") != WordTokenizer.fit("a b\n")
    assert CharTokenizer.fit("ab") != CharTokenizer.fit("abc")


@pytest.mark.parametrize(
    "d, error, match",
    [
        ([], TypeError, "d"),
        ({"type": "bpe", "tokens": ["a"]}, ValueError, r"d\['type'\]"),
        ({"type": ["char"], "tokens": ["a"]}, ValueError, r"d\['type'\]"),
        ({"type": "char"}, ValueError, "tokens"),
        ({"type": "char", "tokens": ["a", "bc"]}, ValueError, r"d\['tokens'\]\[1\]"),
        ({"type": "word", "tokens": ["a"]}, ValueError, r"d\['tokens'\].*<unk>"),
        ({"type": "word", "tokens": "<unk> <eos>"}, TypeError, r"d\['tokens'\]"),
    ],
)
def test_from_dict_rejects_bad_input(d, error, match):
    with pytest.raises(error, match=match):
        tokenizer_from_dict(d)


# ----- read_text --------------------------------------------------------------------------------------------
def test_read_text_normalizes_line_endings_and_drops_bom(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    assert read_text(path) == "one\ntwo\nthree\n"
    assert read_text(str(path)) == "one\ntwo\nthree\n"


def test_read_text_other_encodings(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café\n".encode("latin-1"))
    assert read_text(path, encoding="latin-1") == "café\n"
    wide = tmp_path / "wide.txt"
    wide.write_bytes("wide text\n".encode("utf-16"))  # has NUL bytes, but is text in this encoding
    assert read_text(wide, encoding="utf-16") == "wide text\n"


def test_read_text_errors(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(missing)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        read_text(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt.*utf-8.*encoding"):
        read_text(latin)
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"GIF89a\x00\x00\x01\x00")
    with pytest.raises(ValueError, match=r"data.bin.*NUL.*utf-8.*encoding"):
        read_text(binary)
    with pytest.raises(ValueError, match="encoding: got 'no-such-codec'"):
        read_text(latin, encoding="no-such-codec")
    with pytest.raises(ValueError, match="encoding: got 'base64'.*not a text encoding"):
        read_text(latin, encoding="base64")
    with pytest.raises(TypeError, match="path"):
        read_text(3)


# ----- real datasets ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ptb(shared_data):
    texts = {split: read_text(shared_data / "ptb" / f"ptb.{split}.txt") for split in ("train", "valid", "test")}
    return WordTokenizer.fit(texts["train"]), texts


def test_ptb_vocabulary_is_10000_words(ptb):
    tok, texts = ptb
    assert tok.vocab_size == 10000
    # Token counts (words + one <eos> per line) from the dataset's README.
    assert tok.encode(texts["train"]).shape == (929589,)


@pytest.mark.parametrize("split, tokens", [("valid", 73760), ("test", 82430)])
def test_ptb_held_out_splits_have_no_new_words(ptb, split, tokens):
    tok, texts = ptb
    ids = tok.encode(texts[split])
    assert ids.shape == (tokens,)
    assert (ids == tok.unk_id).sum() == texts[split].split().count("<unk>")
    assert tok.decode(ids).split() == texts[split].split()


def test_tinyshakespeare_has_65_characters(shared_data):
    text = read_text(shared_data / "tinyshakespeare.txt")
    tok = CharTokenizer.fit(text)
    assert tok.vocab_size == 65
    ids = tok.encode(text)
    assert ids.shape == (1115394,)
    assert tok.decode(ids) == text
