"""Text for language models: reading training files and turning text into token ids and back.

- ``CharTokenizer``: one id per character (char-rnn); ids follow code-point order of the characters seen by
  ``fit``. A character that ``fit`` never saw cannot be encoded: ``encode`` raises ValueError naming it, because
  silently replacing it would change the text a model is primed with or evaluated on.
- ``WordTokenizer``: whitespace-separated words with ``<eos>`` at the end of every line, as in PyTorch's
  word_language_model and Zaremba et al.'s Penn Treebank setup (so PTB's vocabulary is exactly 10,000 types).
  Words outside the vocabulary, and words ``fit`` dropped as rare, encode to ``<unk>``.
- ``read_text``: a whole file as one string, with clear errors for missing, empty and binary files.

Tokenizers serialize to a JSON-able dict (``to_dict`` / ``tokenizer_from_dict``) so checkpoints can carry them.
"""

from __future__ import annotations

import codecs
import numbers
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from . import _checks

UNK = "<unk>"
EOS = "<eos>"


def _check_text(text, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name}: got {type(text).__name__}, expected str")
    return text


class _Tokenizer:
    """Shared behaviour: a fixed vocabulary (token per id), equality, serialization and id validation."""

    kind: str

    def __init__(self, tokens: Sequence[str], name: str):
        self._tokens = tuple(self._checked(tokens, name))

    @staticmethod
    def _checked(tokens, name: str) -> list[str]:
        """``tokens`` as a list if they form a valid vocabulary for this kind of tokenizer, else an error."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @property
    def vocab(self) -> tuple[str, ...]:
        """The tokens in id order."""
        return self._tokens

    def to_dict(self) -> dict:
        return {"type": self.kind, "tokens": list(self._tokens)}

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._tokens == self._tokens

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    def _ids(self, ids) -> np.ndarray:
        arr = _checks.as_int_array(ids, "ids", ndim=1)
        _checks.check_range(arr, "ids", 0, self.vocab_size - 1)
        return arr


def _check_tokens(tokens, name: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name}: got {type(tokens).__name__}, expected a list of token strings")
    tokens = list(tokens)
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"{name}[{i}]: got {type(token).__name__}, expected str")
    if not tokens:
        raise ValueError(f"{name}: got an empty vocabulary, expected at least one token")
    seen = set()
    for token in tokens:
        if token in seen:
            raise ValueError(f"{name}: token {token!r} appears more than once, expected unique tokens")
        seen.add(token)
    return tokens


def _code_points(text: str) -> np.ndarray:
    """The code points of ``text`` as uint32, without a Python-level loop over characters."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer(_Tokenizer):
    """Characters to ids. ``CharTokenizer.fit(text)`` takes every distinct character of ``text``, sorted by code
    point. Encoding a character outside the vocabulary raises ValueError naming it."""

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        super().__init__(chars, "chars")
        points = _code_points("".join(self._tokens)).astype(np.int64)
        self._sort = np.argsort(points, kind="stable")
        self._sorted_points = points[self._sort]
        self._points = points.astype("<u4")

    @staticmethod
    def _checked(chars, name: str) -> list[str]:
        chars = _check_tokens(chars, name)
        for i, c in enumerate(chars):
            if len(c) != 1:
                raise ValueError(f"{name}[{i}]: got {c!r}, expected a single character")
        return chars

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        text = _check_text(text)
        if not text:
            raise ValueError("text: got an empty string, expected text to take the characters from")
        return cls(sorted(set(text)))

    def encode(self, text: str) -> np.ndarray:
        """int64 ids, one per character."""
        points = _code_points(_check_text(text)).astype(np.int64)
        pos = np.searchsorted(self._sorted_points, points)
        pos[pos == len(self._sorted_points)] = 0
        unknown = np.flatnonzero(self._sorted_points[pos] != points)
        if unknown.size:
            at = int(unknown[0])
            raise ValueError(
                f"text: character {text[at]!r} (U+{ord(text[at]):04X}) at position {at} is not among "
                f"the tokenizer's {self.vocab_size} characters; fit the tokenizer on text that "
                f"contains it"
            )
        return self._sort[pos].astype(np.int64)

    def decode(self, ids) -> str:
        """The characters of ``ids`` as one string."""
        return self._points[self._ids(ids)].tobytes().decode("utf-32-le", "surrogatepass")


class WordTokenizer(_Tokenizer):
    """Whitespace-separated words to ids, with ``<eos>`` for every newline and ``<unk>`` for unknown words.

    Ids: ``<unk>`` is 0, ``<eos>`` is 1, then words from most to least frequent, ties in alphabetical order, so
    the same text always gives the same ids. A text that already uses ``<unk>`` (as Penn Treebank does) shares
    the token. A final line without a newline gets no ``<eos>``, so a prompt encodes without one and
    ``decode(encode(text))`` gives the text back with whitespace normalized.
    """

    kind = "word"

    def __init__(self, tokens: Sequence[str]):
        super().__init__(tokens, "tokens")
        self._index = {token: i for i, token in enumerate(self._tokens)}
        self.unk_id = self._index[UNK]
        self.eos_id = self._index[EOS]

    @staticmethod
    def _checked(tokens, name: str) -> list[str]:
        tokens = _check_tokens(tokens, name)
        for i, token in enumerate(tokens):
            if token.split() != [token]:
                raise ValueError(f"{name}[{i}]: got {token!r}, expected a non-empty word without whitespace")
        for special in (UNK, EOS):
            if special not in tokens:
                raise ValueError(f"{name}: {special!r} is missing, expected it in every word vocabulary")
        return tokens

    @staticmethod
    def _split(text: str) -> list[str]:
        *lines, last = text.split("\n")
        words = []
        for line in lines:
            words.extend(line.split())
            words.append(EOS)
        words.extend(last.split())
        return words

    @classmethod
    def fit(cls, text: str, max_vocab: int | None = None, min_count: int = 1) -> WordTokenizer:
        """The vocabulary of ``text``: at most ``max_vocab`` tokens (``<unk>`` and ``<eos>`` included), only
        words seen at least ``min_count`` times."""
        text = _check_text(text)
        _vocabulary_limits(max_vocab, min_count)
        counts = Counter(cls._split(text))
        if not counts:
            raise ValueError("text: got no words (empty or only whitespace), expected text to build a vocabulary")
        return cls.from_counts(counts, max_vocab, min_count)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], max_vocab: int | None = None, min_count: int = 1) -> WordTokenizer:
        """The vocabulary ``fit`` builds from a text, built from the number of times each word occurs in it
        (``counts``, e.g. a Counter updated chunk by chunk): ``<unk>``, ``<eos>``, then the words seen at least
        ``min_count`` times, most frequent first, ties in alphabetical order; at most ``max_vocab`` tokens."""
        max_vocab, min_count = _vocabulary_limits(max_vocab, min_count)
        if not isinstance(counts, Mapping):
            raise TypeError(f"counts: got {type(counts).__name__}, expected a mapping of words to counts")
        for word, n in counts.items():
            if not isinstance(word, str) or isinstance(n, bool) or not isinstance(n, numbers.Integral):
                raise TypeError(f"counts: got {word!r}: {n!r}, expected words (str) mapped to counts (integers)")
            if n < 0:
                raise ValueError(f"counts: got {word!r}: {n}, expected counts >= 0")
        words = sorted(
            (w for w, n in counts.items() if n >= min_count and w not in (UNK, EOS)), key=lambda w: (-counts[w], w)
        )
        tokens = [UNK, EOS] + words
        return cls(tokens if max_vocab is None else tokens[:max_vocab])

    def encode(self, text: str) -> np.ndarray:
        """int64 ids; unknown words become ``<unk>``'s id."""
        get, unk = self._index.get, self.unk_id
        return np.array([get(w, unk) for w in self._split(_check_text(text))], dtype=np.int64)

    def decode(self, ids) -> str:
        """Words joined by spaces, ``<eos>`` as a newline."""
        lines, line = [], []
        for i in self._ids(ids).tolist():
            if i == self.eos_id:
                lines.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(self._tokens[i])
        lines.append(" ".join(line))
        return "".join(lines)


def _vocabulary_limits(max_vocab, min_count) -> tuple[int | None, int]:
    """``max_vocab`` (None, or at least 2 for ``<unk>`` and ``<eos>``) and ``min_count`` checked."""
    if max_vocab is not None:
        max_vocab = _checks.positive_int(max_vocab, "max_vocab", minimum=2)
    return max_vocab, _checks.positive_int(min_count, "min_count")


_TOKENIZER_TYPES = {cls.kind: cls for cls in (CharTokenizer, WordTokenizer)}


def tokenizer_from_dict(d: Mapping) -> CharTokenizer | WordTokenizer:
    """The tokenizer ``to_dict`` described."""
    if not isinstance(d, Mapping):
        raise TypeError(f"d: got {type(d).__name__}, expected the dict a tokenizer's to_dict() returns")
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in _TOKENIZER_TYPES:
        raise ValueError(f"d['type']: got {kind!r}, expected one of {', '.join(map(repr, _TOKENIZER_TYPES))}")
    if "tokens" not in d:
        raise ValueError("d: has no 'tokens', expected the vocabulary in id order")
    cls = _TOKENIZER_TYPES[kind]
    return cls(cls._checked(d["tokens"], "d['tokens']"))


def read_text(path, encoding: str = "utf-8") -> str:
    """The whole file as a string. Line endings become ``\\n`` (as Python's text mode does) and a UTF-8
    byte-order mark is dropped."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: got {type(path).__name__}, expected a file path (str or os.PathLike)")
    path = os.fspath(path)
    if not isinstance(encoding, str):
        raise TypeError(f"encoding: got {encoding!r} ({type(encoding).__name__}), expected a codec name")
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"encoding: got {encoding!r}, expected a codec name such as 'utf-8' or 'latin-1'") from None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"path: {path} does not exist, expected a text file") from None
    hint = "if it is text in another encoding, pass it with encoding= (--encoding on the command line)"
    try:
        text = data.decode("utf-8-sig" if codec == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"path: {path} is not {encoding} text (byte {exc.start}: {exc.reason}), it may be a binary file; {hint}"
        ) from None
    except LookupError:  # codecs such as base64 exist but do not decode bytes to text
        raise ValueError(f"encoding: got {encoding!r}, which is not a text encoding") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise ValueError(
            f"path: {path} contains a NUL character at position {nul} when read as {encoding}, "
            f"so it looks like a binary file; {hint}"
        )
    if not text:
        raise ValueError(f"path: {path} is empty, expected text")
    return text.replace("\r\n", "\n").replace("\r", "\n")
