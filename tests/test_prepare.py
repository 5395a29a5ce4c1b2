"""Token files (rnnfast.prepare): the same ids as the in-memory tokenizers, the documented layout, every kind of
damaged file refused by name, atomic writes, and memory that does not grow with the corpus."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnfast import prepare as prep
from rnnfast.prepare import TokenFileError, id_dtype, open_tokens, prepare
from rnnfast.text import CharTokenizer, WordTokenizer, read_text

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\r\n\r\nAll:\nSpeak, speak.\n"


def reference(path, level: str, encoding: str = "utf-8", **fit_kwargs):
    """The tokenizer and ids of the in-memory path: read_text, fit, encode."""
    text = read_text(path, encoding)
    cls = CharTokenizer if level == "char" else WordTokenizer
    tokenizer = cls.fit(text, **fit_kwargs)
    return tokenizer, tokenizer.encode(text)


def assert_same_as_in_memory(text_path, out_path, level, encoding="utf-8", chunk_bytes=1 << 20, **fit_kwargs):
    result = prepare(text_path, out_path, level=level, encoding=encoding, chunk_bytes=chunk_bytes, **fit_kwargs)
    ids, tokenizer = open_tokens(out_path)
    expected_tokenizer, expected_ids = reference(text_path, level, encoding, **fit_kwargs)
    assert tokenizer == expected_tokenizer
    np.testing.assert_array_equal(ids, expected_ids)
    assert result.count == len(expected_ids) and result.tokenizer == expected_tokenizer
    assert ids.dtype == id_dtype(expected_tokenizer.vocab_size)
    return ids, tokenizer


# ----- same ids as the tokenizers -----------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["char", "word"])
@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 64, 1 << 20])
def test_ids_equal_the_in_memory_tokenizer(tmp_path, level, chunk_bytes):
    source = tmp_path / "text.txt"
    source.write_bytes(("\ufeff" + TEXT + "naïve café — 日本語 😀\rlast line").encode("utf-8"))
    assert_same_as_in_memory(source, tmp_path / "out.tokens", level, chunk_bytes=chunk_bytes)


# Texts built from the characters where chunking could go wrong: multi-byte UTF-8, CR/LF pairs split across
# chunks, a byte-order mark, whitespace other than spaces (which separates words but is not a newline).
_tricky_text = st.lists(
    st.sampled_from(list("ab c\n\r\t") + ["é", "日", "😀", "\u2028", "\x85", "\x0b", "<unk>", "<eos>"]),
    min_size=1,
    max_size=40,
).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_tricky_text,
    bom=st.booleans(),
    chunk_bytes=st.integers(1, 9),
    level=st.sampled_from(["char", "word"]),
    max_vocab=st.none() | st.integers(2, 6),
    min_count=st.integers(1, 3),
)
def test_any_chunking_gives_the_in_memory_ids(text, bom, chunk_bytes, level, max_vocab, min_count):
    fit_kwargs = {"max_vocab": max_vocab, "min_count": min_count} if level == "word" else {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "text.txt"
        source.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
        try:
            reference(source, level, **fit_kwargs)
        except ValueError as exc:  # e.g. a text whose only "words" are <eos>: prepare must refuse it too
            with pytest.raises(ValueError, match="text_path"):
                prepare(source, Path(tmp) / "out.tokens", level=level, chunk_bytes=chunk_bytes, **fit_kwargs)
            assert "words" in str(exc)
            return
        assert_same_as_in_memory(source, Path(tmp) / "out.tokens", level, chunk_bytes=chunk_bytes, **fit_kwargs)


@pytest.mark.parametrize(
    "encoding, data",
    [("latin-1", "café\r\nna\xefve\n".encode("latin-1")), ("utf-16", "wide text\nzwei Zeilen\n".encode("utf-16"))],
)
def test_other_encodings(tmp_path, encoding, data):
    source = tmp_path / "text.txt"
    source.write_bytes(data)
    for level in ("char", "word"):
        assert_same_as_in_memory(source, tmp_path / f"{level}.tokens", level, encoding=encoding, chunk_bytes=3)


def test_word_vocabulary_limits_match_fit(tmp_path):
    source = tmp_path / "text.txt"
    source.write_text("the cat sat on the mat\nthe dog sat\n<unk> ate the rat\n" * 3 + "zebra\n")
    for kwargs in ({"max_vocab": 4}, {"min_count": 4}, {"max_vocab": 5, "min_count": 2}):
        _, tokenizer = assert_same_as_in_memory(source, tmp_path / "out.tokens", "word", chunk_bytes=7, **kwargs)
        assert tokenizer.vocab[:2] == ("<unk>", "<eos>")


def test_shakespeare_and_ptb(tmp_path, shared_data):
    assert_same_as_in_memory(shared_data / "tinyshakespeare.txt", tmp_path / "chars.tokens", "char")
    ids, tokenizer = assert_same_as_in_memory(shared_data / "ptb" / "ptb.train.txt", tmp_path / "words.tokens", "word")
    assert tokenizer.vocab_size == 10000 and ids.dtype == np.uint16


# ----- dtype and layout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "vocab_size, dtype",
    [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16), (65537, np.uint32), (2**32, np.uint32)],
)
def test_smallest_unsigned_type_that_fits(vocab_size, dtype):
    assert id_dtype(vocab_size) == np.dtype(dtype)


@pytest.mark.parametrize("vocab_size, error", [(2**32 + 1, ValueError), (0, ValueError), (2.0, TypeError)])
def test_id_dtype_rejects_impossible_sizes(vocab_size, error):
    with pytest.raises(error, match="vocab_size"):
        id_dtype(vocab_size)


def test_a_vocabulary_beyond_256_characters_is_stored_as_uint16(tmp_path):
    source = tmp_path / "text.txt"
    source.write_text("".join(chr(c) for c in range(0x100, 0x100 + 300)), encoding="utf-8")
    ids, _ = assert_same_as_in_memory(source, tmp_path / "out.tokens", "char")
    assert ids.dtype == np.uint16 and ids.max() == 299


def parse_by_the_documented_layout(path: Path):
    """The file decoded from the module docstring's description alone."""
    raw = path.read_bytes()
    assert raw[:8] == b"RNNFTOKS"
    (length,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(raw[16 : 16 + length])
    start = 16 + length
    assert start % 64 == 0
    dtype = np.dtype(header["dtype"]).newbyteorder("<")
    end = start + header["count"] * dtype.itemsize
    assert len(raw) == end + 32
    assert hashlib.sha256(raw[:end]).digest() == raw[end:]
    return header, np.frombuffer(raw[start:end], dtype)


def test_file_follows_the_documented_layout(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text(TEXT)
    prepare(source, tmp_path / "out.tokens", level="word")
    header, ids = parse_by_the_documented_layout(tmp_path / "out.tokens")
    tokenizer, expected = reference(source, "word")
    assert header["format"] == "rnnfast-tokens" and header["format_version"] == 1
    assert header["dtype"] == "uint8" and header["count"] == len(expected)
    assert header["tokenizer"] == tokenizer.to_dict()
    assert header["source"] == {"name": "corpus.txt", "bytes": source.stat().st_size, "encoding": "utf-8"}
    np.testing.assert_array_equal(ids, expected)


def test_ids_are_a_read_only_memory_map(tmp_path):
    source = tmp_path / "text.txt"
    source.write_text(TEXT)
    prepare(source, tmp_path / "out.tokens")
    ids, _ = open_tokens(tmp_path / "out.tokens")
    assert isinstance(ids, np.memmap) and not ids.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        ids[0] = 1


# ----- bad arguments and bad text -----------------------------------------------------------------------------
@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return path


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"level": "byte"}, ValueError, "level: got 'byte'"),
        ({"encoding": "no-such-codec"}, ValueError, "encoding: got 'no-such-codec'"),
        ({"encoding": "base64"}, ValueError, "encoding: got 'base64'.*not a text encoding"),
        ({"encoding": 8}, TypeError, "encoding"),
        ({"chunk_bytes": 0}, ValueError, "chunk_bytes: got 0"),
        ({"chunk_bytes": 1.5}, TypeError, "chunk_bytes"),
        ({"level": "char", "max_vocab": 10}, ValueError, "max_vocab, min_count.*level='char'"),
        ({"level": "word", "max_vocab": 1}, ValueError, "max_vocab: got 1"),
        ({"level": "word", "min_count": 0}, ValueError, "min_count: got 0"),
    ],
)
def test_prepare_rejects_bad_arguments_and_writes_nothing(tmp_path, text_file, kwargs, error, match):
    with pytest.raises(error, match=match):
        prepare(text_file, tmp_path / "out.tokens", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.txt"]


def test_prepare_path_errors(tmp_path, text_file):
    with pytest.raises(FileNotFoundError, match="text_path: .*missing.txt does not exist"):
        prepare(tmp_path / "missing.txt", tmp_path / "out.tokens")
    with pytest.raises(IsADirectoryError, match="text_path"):
        prepare(tmp_path, tmp_path / "out.tokens")
    with pytest.raises(FileNotFoundError, match="out_path: the directory"):
        prepare(text_file, tmp_path / "no" / "out.tokens")
    with pytest.raises(IsADirectoryError, match="out_path"):
        prepare(text_file, tmp_path)
    with pytest.raises(ValueError, match="out_path: .* is the text file itself"):
        prepare(text_file, text_file)
    with pytest.raises(TypeError, match="text_path"):
        prepare(3, tmp_path / "out.tokens")
    with pytest.raises(TypeError, match="out_path"):
        prepare(text_file, None)
    assert text_file.read_bytes() == TEXT.encode()


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", "NUL character at position 7"),
        ("caf\u00e9 ".encode("latin-1") + b"ok", r"not utf-8 text \(byte 3: invalid continuation byte\)"),
    ],
)
@pytest.mark.parametrize("level", ["char", "word"])
def test_texts_that_read_text_refuses_are_refused_alike(tmp_path, data, match, level):
    source = tmp_path / "bad.txt"
    source.write_bytes(data)
    with pytest.raises(ValueError, match=match):
        read_text(source)
    with pytest.raises(ValueError, match="text_path: .*bad.txt .*" + match):
        prepare(source, tmp_path / "out.tokens", level=level, chunk_bytes=2)
    assert not (tmp_path / "out.tokens").exists()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    prefix=st.text(alphabet=st.sampled_from("ab\né日"), max_size=20),
    bad=st.sampled_from([b"\xff", b"\xc3(", b"\xe6\x97", b"\xed\xa0\x80"]),
    chunk_bytes=st.integers(1, 7),
)
def test_undecodable_byte_is_reported_at_the_same_offset_as_read_text(prefix, bad, chunk_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "bad.txt"
        source.write_bytes(prefix.encode("utf-8") + bad + b"tail")
        with pytest.raises(ValueError) as expected:
            read_text(source)
        offset = str(expected.value).split("(byte ")[1].split(":")[0]
        with pytest.raises(ValueError, match=rf"\(byte {offset}:"):
            prepare(source, Path(tmp) / "out.tokens", chunk_bytes=chunk_bytes)


def test_whitespace_only_text_has_no_words(tmp_path):
    source = tmp_path / "blank.txt"
    source.write_text("  \t  ")
    with pytest.raises(ValueError, match="no words"):
        WordTokenizer.fit(read_text(source))
    with pytest.raises(ValueError, match="text_path: .*blank.txt has no words"):
        prepare(source, tmp_path / "out.tokens", level="word")
    prepare(source, tmp_path / "out.tokens", level="char")  # whitespace is characters all the same
    assert open_tokens(tmp_path / "out.tokens")[1].vocab == ("\t", " ")


# ----- atomic writes ------------------------------------------------------------------------------------------
def test_a_text_that_changes_between_the_passes_fails_and_keeps_the_old_file(tmp_path, text_file, monkeypatch):
    out = tmp_path / "out.tokens"
    prepare(text_file, out)
    before = out.read_bytes()
    real_chunks = prep._text_chunks
    calls = []

    def append_a_new_character_before_the_second_pass(*args):
        calls.append(args)
        if len(calls) == 2:
            with open(text_file, "a", encoding="utf-8") as f:
                f.write("Zß")
        return real_chunks(*args)

    monkeypatch.setattr(prep, "_text_chunks", append_a_new_character_before_the_second_pass)
    for level in ("char", "word"):
        calls.clear()
        text_file.write_text(TEXT)
        with pytest.raises(ValueError, match="text_path: .*text.txt changed while it was being prepared"):
            prepare(text_file, out, level=level)
        assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tokens", "text.txt"]


# ----- damaged token files ------------------------------------------------------------------------------------
@pytest.fixture
def token_file(tmp_path) -> Path:
    source = tmp_path / "text.txt"
    source.write_text(TEXT * 20)
    out = tmp_path / "corpus.tokens"
    prepare(source, out, level="word")
    return out


def reseal(path: Path, edit_header) -> None:
    """Rewrite the header through ``edit_header`` and give the file a valid digest again, so that only the
    edited field can be what open_tokens objects to."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[8:16])
    header = edit_header(json.loads(raw[16 : 16 + length]))
    ids = raw[16 + length : -32]
    body = json.dumps(header).encode()
    body += b" " * (-(16 + len(body)) % 64)
    content = b"RNNFTOKS" + struct.pack("<Q", len(body)) + body + ids
    path.write_bytes(content + hashlib.sha256(content).digest())


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: .*none.tokens does not exist"):
        open_tokens(tmp_path / "none.tokens")
    with pytest.raises(IsADirectoryError, match="path: .* is a directory"):
        open_tokens(tmp_path)
    with pytest.raises(TypeError, match="path"):
        open_tokens(None)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "too short"),
        (b"hello world, this is text\n" * 3, "not an rnnfast token file"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", "not an rnnfast token"),
        (b"RNNFTOKS" + struct.pack("<Q", 2**63) + b"{}", "header claims"),
        (b"RNNFTOKS" + struct.pack("<Q", 48) + b"[1, 2]".ljust(48), "JSON list, expected an object"),
        (b"RNNFTOKS" + struct.pack("<Q", 48) + b"{not json".ljust(48), "not valid JSON"),
        (b"RNNFTOKS" + struct.pack("<Q", 47) + b"{}".ljust(47), "multiple of 64"),
    ],
)
def test_foreign_and_garbled_files(tmp_path, content, match):
    path = tmp_path / "bad.tokens"
    path.write_bytes(content)
    with pytest.raises(TokenFileError, match="bad.tokens: .*" + match):
        open_tokens(path)


def test_every_truncation_is_refused(token_file):
    raw = token_file.read_bytes()
    for size in sorted({0, 7, 8, 15, 16, 17, 64, 100, len(raw) // 2, len(raw) - 33, len(raw) - 32, len(raw) - 1}):
        token_file.write_bytes(raw[:size])
        with pytest.raises(TokenFileError, match="corpus.tokens: "):
            open_tokens(token_file)


def test_extra_bytes_are_refused(token_file):
    with open(token_file, "ab") as f:
        f.write(b"\x00")
    with pytest.raises(TokenFileError, match="1 unexpected bytes"):
        open_tokens(token_file)


def test_a_flipped_bit_in_the_ids_fails_the_checksum_unless_verification_is_off(token_file):
    raw = bytearray(token_file.read_bytes())
    position = len(raw) - 32 - 5
    raw[position] ^= 0x01
    token_file.write_bytes(bytes(raw))
    with pytest.raises(TokenFileError, match="checksum mismatch"):
        open_tokens(token_file)
    ids, _ = open_tokens(token_file, verify=False)  # only header and size are checked without verification
    assert len(ids) > 0


def test_every_flipped_bit_of_the_digest_and_header_is_detected(token_file):
    raw = token_file.read_bytes()
    (length,) = struct.unpack("<Q", raw[8:16])
    positions = list(range(0, 16 + length, 7)) + list(range(len(raw) - 32, len(raw)))
    for position in positions:
        damaged = bytearray(raw)
        damaged[position] ^= 0x10
        token_file.write_bytes(bytes(damaged))
        with pytest.raises(TokenFileError, match="corpus.tokens: "):
            open_tokens(token_file)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: {**h, "format_version": 2}, "newer rnnfast.*token format 2"),
        (lambda h: {**h, "format_version": "1"}, "format_version '1'"),
        (lambda h: {**h, "format": "other"}, "format 'other'"),
        (lambda h: {**h, "dtype": "int64"}, "dtype 'int64'"),
        (lambda h: {**h, "dtype": ["uint8"]}, r"dtype \['uint8'\]"),
        (lambda h: {**h, "count": -1}, "count -1"),
        (lambda h: {**h, "count": 1.5}, "count 1.5"),
        (lambda h: {**h, "count": h["count"] + 1}, "truncated"),
        (lambda h: {**h, "tokenizer": {"type": "bpe"}}, "cannot rebuild the tokenizer"),
        (lambda h: {**h, "tokenizer": {"type": "word", "tokens": ["<unk>", "<eos>"]}}, "id .* outside the vocabulary"),
    ],
)
def test_inconsistent_headers_with_valid_checksums(token_file, edit, match):
    reseal(token_file, edit)
    with pytest.raises(TokenFileError, match="corpus.tokens: .*" + match):
        open_tokens(token_file)


def test_a_vocabulary_too_large_for_the_dtype_is_refused(token_file):
    tokens = ["<unk>", "<eos>"] + [f"w{i}" for i in range(300)]
    reseal(token_file, lambda h: {**h, "dtype": "uint8", "tokenizer": {"type": "word", "tokens": tokens}})
    with pytest.raises(TokenFileError, match="uint8 cannot hold the ids of a vocabulary of 302"):
        open_tokens(token_file)


# ----- memory -------------------------------------------------------------------------------------------------
_MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from rnnfast.prepare import open_tokens, prepare

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    corpus, out, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # RLIMIT_DATA caps private writable memory (heap and anonymous maps: everything numpy and Python allocate)
    # but not the read-only file mapping of the ids, so exceeding the budget anywhere raises MemoryError.
    limit = status("VmData") + budget
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    start = time.perf_counter()
    prepare(corpus, out, level="char")
    ids, tokenizer = open_tokens(out)
    prepared = time.perf_counter() - start

    # Three epochs over B parallel streams, T steps at a time, as truncated BPTT reads them: a view of the map,
    # one (T, B) batch copied at a time.
    B, T = 256, 128
    streams = ids[: len(ids) // B * B].reshape(B, -1)
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for epoch in range(3):
        for i in range(0, streams.shape[1], T):
            batch = np.ascontiguousarray(streams[:, i : i + T].T, dtype=np.int64)
            counts += np.bincount(batch.ravel(), minlength=tokenizer.vocab_size)
    try:
        np.ones(2 * budget, dtype=np.uint8)
        enforced = False
    except MemoryError:
        enforced = True
    print(json.dumps({"counts": counts.tolist(), "vocab": list(tokenizer.vocab), "count": len(ids),
                      "enforced": enforced, "prepare_s": prepared, "total_s": time.perf_counter() - start}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA and /proc are Linux's")
def test_memory_stays_flat_for_a_corpus_several_times_the_budget(tmp_path):
    budget = 48 << 20
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefghij klmnopqrst\nuvwxyz,.;"))
    block = "".join(rng.choice(alphabet, size=1 << 16))  # 64 KiB of ASCII, a multiple of the 256 streams
    repeats = 3200  # 200 MiB
    corpus = tmp_path / "corpus.txt"
    with open(corpus, "w", encoding="ascii", newline="") as f:
        for _ in range(repeats):
            f.write(block)
    assert corpus.stat().st_size == repeats * len(block) > 4 * budget

    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(corpus), str(tmp_path / "c.tokens"), str(budget)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["enforced"], "the memory limit did not apply, so the test proves nothing"
    assert report["count"] == repeats * len(block)
    tokenizer = CharTokenizer.fit(block)
    assert report["vocab"] == list(tokenizer.vocab)
    expected = 3 * repeats * np.bincount(tokenizer.encode(block), minlength=tokenizer.vocab_size)
    np.testing.assert_array_equal(report["counts"], expected)
