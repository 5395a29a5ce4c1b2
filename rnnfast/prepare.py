"""Token files: a text corpus tokenized once into ids that training reads through a memory map.

``prepare`` streams the text file twice in chunks (a first pass builds the vocabulary, a second writes the ids), so
neither the text nor the ids are ever held in memory whole; ``open_tokens`` returns the ids as a read-only
``np.memmap`` plus the tokenizer. The ids are exactly ``CharTokenizer.fit(text).encode(text)`` (``level="char"``)
or ``WordTokenizer.fit(text, max_vocab, min_count).encode(text)`` (``level="word"``) of
``rnnfast.text.read_text(text_path, encoding)``.

Layout of a token file (one file, little-endian throughout):

- 8 bytes ``MAGIC`` (``b"RNNFTOKS"``), then 8 bytes: the header length N (unsigned);
- N bytes of JSON (ASCII), padded with spaces so that the ids start at a multiple of 64 bytes:
  ``{"format": "rnnfast-tokens", "format_version": 1, "dtype": "uint8"|"uint16"|"uint32", "count": <ids>,
  "tokenizer": <tokenizer.to_dict()>, "source": {"name", "bytes", "encoding"}}``;
- ``count`` ids of ``dtype``, the smallest unsigned integer type that holds every id of the vocabulary;
- 32 bytes: the SHA-256 digest of everything before it.

Files are written atomically (temporary file, fsync, rename): an interrupted ``prepare`` leaves no partial file.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import struct
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from . import _checks
from .data import _as_path, _check_encoding
from .io import _write_atomically
from .text import CharTokenizer, WordTokenizer, _code_points, _vocabulary_limits, tokenizer_from_dict

MAGIC = b"RNNFTOKS"
FORMAT = "rnnfast-tokens"
FORMAT_VERSION = 1
DATA_ALIGNMENT = 64
DIGEST_BYTES = 32
# Ample for a word vocabulary in the millions; a corrupt length beyond it is refused before anything is read.
MAX_HEADER_BYTES = 1 << 30
_ID_DTYPES = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
_ANY_SPACE = re.compile(r"\s")


class TokenFileError(ValueError):
    """A file that is not an intact rnnfast token file: foreign, truncated, corrupt or from a newer rnnfast."""


class Prepared(NamedTuple):
    """What ``prepare`` wrote: the token file's ``path``, the number of ids, their dtype and the tokenizer."""

    path: str
    count: int
    dtype: np.dtype
    tokenizer: CharTokenizer | WordTokenizer


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest little-endian unsigned integer type that holds ids 0..vocab_size-1."""
    vocab_size = _checks.positive_int(vocab_size, "vocab_size")
    for dtype in _ID_DTYPES.values():
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"vocab_size: got {vocab_size}, expected at most {np.iinfo(np.uint32).max + 1}")


# ----- reading text in chunks -------------------------------------------------------------------------------
def _text_chunks(path: str, encoding: str, chunk_bytes: int) -> Iterator[str]:
    """The file's text in pieces, decoded and normalized exactly as ``rnnfast.text.read_text`` does (UTF-8
    byte-order mark dropped, ``\\r\\n`` and ``\\r`` as ``\\n``), with the same errors for bytes that do not decode,
    NUL characters and empty files."""
    codec = codecs.lookup(encoding).name
    decoder = codecs.getincrementaldecoder("utf-8-sig" if codec == "utf-8" else encoding)()
    if not isinstance(decoder.decode(b""), str):
        raise ValueError(f"encoding: got {encoding!r}, which is not a text encoding")
    hint = "if it is text in another encoding, pass it with encoding= (--encoding on the command line)"
    read_bytes = chars = 0
    pending_cr = False  # a "\r" at the end of one piece may be the first half of a "\r\n"
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk_bytes)
            final = not data
            buffered = len(decoder.getstate()[0])
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"text_path: {path} is not {encoding} text (byte {read_bytes - buffered + exc.start}"
                    f": {exc.reason}), it may be a binary file; {hint}"
                ) from None
            read_bytes += len(data)
            if pending_cr:
                text = "\r" + text
            pending_cr = not final and text.endswith("\r")
            if pending_cr:
                text = text[:-1]
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            nul = text.find("\x00")
            if nul >= 0:
                raise ValueError(
                    f"text_path: {path} contains a NUL character at position {chars + nul} when read "
                    f"as {encoding}, so it looks like a binary file; {hint}"
                )
            chars += len(text)
            if text:
                yield text
            if final:
                break
    if chars == 0:
        raise ValueError(f"text_path: {path} is empty, expected text")


def _word_pieces(chunks: Iterator[str]) -> Iterator[str]:
    """The text re-cut at whitespace, so that no word is split between two pieces; ``WordTokenizer._split`` of the
    pieces, concatenated, is then ``_split`` of the whole text (an ``<eos>`` belongs to the piece holding its
    newline). Memory grows only with the longest run of text without whitespace."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        last_space = _ANY_SPACE.search(text[::-1])
        if last_space is None:
            carry = text
            continue
        cut = len(text) - last_space.start()
        yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


# ----- prepare ------------------------------------------------------------------------------------------------
def prepare(
    text_path,
    out_path,
    level: str = "char",
    encoding: str = "utf-8",
    max_vocab: int | None = None,
    min_count: int = 1,
    chunk_bytes: int = 1 << 20,
) -> Prepared:
    """Tokenize ``text_path`` once into the token file ``out_path`` (see the module docstring for the layout).

    ``level`` is ``"char"`` or ``"word"``; ``max_vocab`` and ``min_count`` limit a word vocabulary as in
    ``WordTokenizer.fit``. The file is read ``chunk_bytes`` at a time, twice: memory stays proportional to the
    chunk and the vocabulary, whatever the size of the corpus.
    """
    source = os.fspath(_as_path(text_path, "text_path"))
    out = os.fspath(_as_path(out_path, "out_path"))
    level = _checks.choice(level, "level", ("char", "word"))
    encoding = _check_encoding(encoding)
    chunk_bytes = _checks.positive_int(chunk_bytes, "chunk_bytes")
    if level == "char":
        if max_vocab is not None or min_count != 1:
            raise ValueError(
                f"max_vocab, min_count: got {max_vocab!r} and {min_count!r}, expected the defaults "
                "(None and 1) for level='char', which keeps every character"
            )
    else:
        max_vocab, min_count = _vocabulary_limits(max_vocab, min_count)
    if not os.path.exists(source):
        raise FileNotFoundError(f"text_path: {source} does not exist, expected a text file")
    if os.path.isdir(source):
        raise IsADirectoryError(f"text_path: {source} is a directory, expected a text file")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"out_path: the directory of {out} does not exist")
    if os.path.isdir(out):
        raise IsADirectoryError(f"out_path: {out} is a directory, expected a file name")
    if os.path.exists(out) and os.path.samefile(source, out):
        raise ValueError(f"out_path: {out} is the text file itself, expected a different file")

    def pieces() -> Iterator[str]:
        chunks = _text_chunks(source, encoding, chunk_bytes)
        return chunks if level == "char" else _word_pieces(chunks)

    # Pass 1: the vocabulary and the number of ids.
    count = 0
    if level == "char":
        seen = np.zeros(0x110000, dtype=bool)
        for piece in pieces():
            seen[_code_points(piece)] = True
            count += len(piece)
        tokenizer = CharTokenizer([chr(c) for c in np.flatnonzero(seen)])
    else:
        counts: Counter = Counter()
        for piece in pieces():
            words = WordTokenizer._split(piece)
            counts.update(words)
            count += len(words)
        if not counts:
            raise ValueError(f"text_path: {source} has no words (only whitespace), expected text to build a vocabulary")
        tokenizer = WordTokenizer.from_counts(counts, max_vocab, min_count)

    dtype = id_dtype(tokenizer.vocab_size)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dtype": dtype.name,
        "count": count,
        "tokenizer": tokenizer.to_dict(),
        "source": {"name": os.path.basename(source), "bytes": os.path.getsize(source), "encoding": encoding},
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode("ascii")
    header_bytes += b" " * (-(len(MAGIC) + 8 + len(header_bytes)) % DATA_ALIGNMENT)
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ValueError(
            f"max_vocab: the vocabulary of {tokenizer.vocab_size} tokens needs a header of "
            f"{len(header_bytes)} bytes, more than the {MAX_HEADER_BYTES} a token file may hold"
        )

    # Pass 2: the ids, streamed into the file; the digest covers everything before it.
    changed = f"text_path: {source} changed while it was being prepared"
    if level == "char":
        # A table over every code point (4 MiB) maps characters to ids several times faster than
        # CharTokenizer.encode's binary search, which matters for corpora of gigabytes.
        char_ids = np.full(0x110000, -1, dtype=np.int32)
        char_ids[_code_points("".join(tokenizer.vocab))] = np.arange(tokenizer.vocab_size, dtype=np.int32)

        def encode(piece: str) -> np.ndarray:
            ids = char_ids[_code_points(piece)]
            if ids.min() < 0:
                raise ValueError(f"{changed} (a character the first pass did not see)")
            return ids
    else:
        encode = tokenizer.encode

    def contents() -> Iterator[bytes]:
        digest = hashlib.sha256()
        written = 0
        for part in (MAGIC, struct.pack("<Q", len(header_bytes)), header_bytes):
            digest.update(part)
            yield part
        for piece in pieces():
            ids = encode(piece).astype(dtype).tobytes()
            written += len(ids) // dtype.itemsize
            digest.update(ids)
            yield ids
        if written != count:
            raise ValueError(f"{changed} ({count} tokens in the first pass, {written} in the second)")
        yield digest.digest()

    _write_atomically(out, directory, contents())
    return Prepared(out, count, dtype, tokenizer)


# ----- open -----------------------------------------------------------------------------------------------------
def _read_header(f, size: int, fail) -> tuple[dict, int]:
    """The JSON header and the byte offset of the ids."""
    if size < len(MAGIC) + 8:
        fail(f"only {size} bytes, too short to be a token file (truncated or not a token file)")
    if f.read(len(MAGIC)) != MAGIC:
        fail(f"not an rnnfast token file (it does not start with {MAGIC!r}); create one with rnnfast prepare")
    (length,) = struct.unpack("<Q", f.read(8))
    offset = len(MAGIC) + 8 + length
    if length > MAX_HEADER_BYTES or offset > size:
        fail(f"truncated or corrupt: the header claims {length} bytes but the file holds {size}")
    if offset % DATA_ALIGNMENT:
        fail(f"corrupt: the ids start at byte {offset}, expected a multiple of {DATA_ALIGNMENT}")
    try:
        header = json.loads(f.read(length).decode("utf-8"))
    except (ValueError, RecursionError):
        fail("corrupt: the header is not valid JSON")
    if not isinstance(header, dict):
        fail(f"corrupt: the header is a JSON {type(header).__name__}, expected an object")
    return header, offset


def _check_header(header: dict, fail) -> tuple[np.dtype, int, CharTokenizer | WordTokenizer]:
    if header.get("format") != FORMAT:
        fail(f"format {header.get('format')!r}, expected {FORMAT!r}")
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        fail(f"format_version {version!r} is not a positive integer (corrupt file)")
    if version > FORMAT_VERSION:
        fail(
            f"written by a newer rnnfast (token format {version}, this rnnfast reads up to {FORMAT_VERSION}); "
            "upgrade rnnfast or prepare the corpus again"
        )
    dtype = _ID_DTYPES.get(header.get("dtype")) if isinstance(header.get("dtype"), str) else None
    if dtype is None:
        fail(f"dtype {header.get('dtype')!r}, expected one of {', '.join(_ID_DTYPES)}")
    count = header.get("count")
    if type(count) is not int or count < 1:
        fail(f"count {count!r}, expected a positive integer")
    try:
        tokenizer = tokenizer_from_dict(header.get("tokenizer"))
    except (TypeError, ValueError) as exc:
        fail(f"cannot rebuild the tokenizer: {exc}")
    if tokenizer.vocab_size - 1 > np.iinfo(dtype).max:
        fail(f"dtype {dtype.name} cannot hold the ids of a vocabulary of {tokenizer.vocab_size} tokens")
    return dtype, count, tokenizer


def _verify(path: str, offset: int, count: int, dtype: np.dtype, vocab_size: int, fail) -> None:
    """Check the digest and the id range in one streaming pass over the file, a block at a time. The ids are read
    with ``read`` rather than through the memory map, so that verifying leaves none of the map resident."""
    digest = hashlib.sha256()
    block = (1 << 22) // dtype.itemsize * dtype.itemsize
    out_of_range = None  # (id, position): reported only once the digest shows the file is intact
    with open(path, "rb") as f:
        digest.update(f.read(offset))
        position = 0
        while position < count:
            data = f.read(min(block, (count - position) * dtype.itemsize))
            if not data or len(data) % dtype.itemsize:
                fail("truncated while reading")
            digest.update(data)
            ids = np.frombuffer(data, dtype=dtype)
            if out_of_range is None and int(ids.max()) >= vocab_size:
                at = int(np.argmax(ids >= vocab_size))
                out_of_range = (int(ids[at]), position + at)
            position += len(data) // dtype.itemsize
        stored = f.read(DIGEST_BYTES)
    if stored != digest.digest():
        fail("checksum mismatch: the file is corrupt (changed bytes or an incomplete copy)")
    if out_of_range is not None:
        fail(f"id {out_of_range[0]} at position {out_of_range[1]} is outside the vocabulary of {vocab_size} tokens")


def open_tokens(path, verify: bool = True) -> tuple[np.memmap, CharTokenizer | WordTokenizer]:
    """The ids of a token file as a read-only ``np.memmap`` (1-d, unsigned integers) and its tokenizer.

    ``verify`` reads the whole file once to check its SHA-256 digest and that every id is in the vocabulary (about
    a second per GB); without it only the header and the file size are checked. Anything that is not an intact
    token file raises ``TokenFileError`` (a ValueError) naming the path and the problem.
    """
    path = os.fspath(_as_path(path, "path"))

    def fail(problem: str):
        raise TokenFileError(f"{path}: {problem}")

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"path: {path} does not exist, expected a token file (rnnfast prepare writes one)"
        ) from None
    except IsADirectoryError:
        raise IsADirectoryError(f"path: {path} is a directory, expected a token file") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        header, offset = _read_header(f, size, fail)
    dtype, count, tokenizer = _check_header(header, fail)
    ids_end = offset + count * dtype.itemsize
    expected = ids_end + DIGEST_BYTES
    if size < expected:
        fail(f"truncated: {count} ids of {dtype.name} and the digest need {expected} bytes, the file holds {size}")
    if size > expected:
        fail(f"{size - expected} unexpected bytes after the ids and the digest (corrupt file)")
    if verify:
        _verify(path, offset, count, dtype, tokenizer.vocab_size, fail)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,)), tokenizer


__all__ = ["prepare", "open_tokens", "Prepared", "TokenFileError", "id_dtype", "MAGIC", "FORMAT", "FORMAT_VERSION"]


# ----- command line -----------------------------------------------------------------------------------------
def add_prepare_command(subparsers) -> None:
    """``rnnfast prepare TEXT OUT``."""
    from .tasks.common import positive_int

    r = subparsers.add_parser(
        "prepare",
        help="tokenize a text file once into a token file for language-model training",
        description="Writes the token ids of TEXT to the token file OUT, which "
        "train --data and eval --data read from disk, and prints one JSON object: path, count "
        "(ids), vocab_size, dtype, level.",
    )
    r.add_argument("text", help="the text file")
    r.add_argument("out", help="the token file to write (e.g. corpus.tokens)")
    r.add_argument("--level", choices=("char", "word"), default="char", help="tokens are characters or words")
    r.add_argument("--encoding", default="utf-8", help="text encoding of TEXT")
    r.add_argument("--max-vocab", type=positive_int, help="word: at most this many tokens, <unk> and <eos> included")
    r.add_argument("--min-count", type=positive_int, help="word: words seen fewer times are <unk> (default 1)")


def prepare_command(args) -> int:
    if args.level == "char" and (args.max_vocab is not None or args.min_count is not None):
        raise ValueError(
            "--max-vocab, --min-count: only for --level word (a character vocabulary keeps every character)"
        )
    result = prepare(
        args.text,
        args.out,
        level=args.level,
        encoding=args.encoding,
        max_vocab=args.max_vocab,
        min_count=1 if args.min_count is None else args.min_count,
    )
    print(
        json.dumps(
            {
                "path": result.path,
                "count": result.count,
                "vocab_size": result.tokenizer.vocab_size,
                "dtype": result.dtype.name,
                "level": result.tokenizer.kind,
            }
        )
    )
    return 0
