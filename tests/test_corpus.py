"""The standard-library docstring corpus: content, order, determinism, and that no module is ever imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from rnnfast.corpus import stdlib_docstrings

# antigravity opens a web browser when imported, so finding its docstring proves the file was read, not run.
GEOHASH_DOC = (
    "Compute geohash() using the Munroe algorithm.\n\n"
    ">>> geohash(37.421542, -122.085589, b'2005-05-26-10458.68')\n37.857713 -122.544543"
)

_CHILD = """
import ast, json, sys, sysconfig
import rnnfast.corpus
# What the reader itself needs (the interpreter's build data, inspect.cleandoc) is loaded before counting.
sysconfig.get_paths()
ast.get_docstring(ast.parse("'Warm up.'"), clean=True)
before = set(sys.modules)
text = rnnfast.corpus.stdlib_docstrings()
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(text)
print(json.dumps({"new_modules": sorted(set(sys.modules) - before)}))
"""


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory):
    """The whole corpus, computed in a fresh interpreter with another hash seed, and the modules it imported."""
    out = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out)], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return out.read_text(encoding="utf-8"), json.loads(result.stdout)["new_modules"]


@pytest.mark.slow
def test_corpus_is_large_and_contains_known_docstrings(full_corpus):
    text, _ = full_corpus
    assert len(text) > 200_000
    assert GEOHASH_DOC in text


@pytest.mark.slow
def test_reading_the_corpus_imports_no_module(full_corpus):
    _, new_modules = full_corpus
    # Decoding a source file with a coding cookie may load that codec; nothing else may appear.
    assert [m for m in new_modules if not m.startswith("encodings.")] == []


@pytest.mark.slow
def test_max_chars_is_a_prefix_of_the_same_text_in_this_process(full_corpus):
    text, _ = full_corpus
    assert "antigravity" not in sys.modules
    part = stdlib_docstrings(max_chars=150_000)
    assert len(part) == 150_000
    assert part == text[:150_000]
    assert "antigravity" not in sys.modules


def test_max_chars_is_checked():
    with pytest.raises(ValueError, match="max_chars"):
        stdlib_docstrings(max_chars=0)
    with pytest.raises(TypeError, match="max_chars"):
        stdlib_docstrings(max_chars=1.5)


@pytest.fixture()
def fake_stdlib(tmp_path, monkeypatch):
    """A small library tree standing in for the standard library."""
    monkeypatch.setattr(sysconfig, "get_paths", lambda *args, **kwargs: {"stdlib": str(tmp_path)})
    return tmp_path


def _write(root, relative: str, source: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, str):
        source = textwrap.dedent(source).encode("utf-8")
    path.write_bytes(source)


def test_docstrings_in_path_and_source_order_cleaned_and_filtered(fake_stdlib):
    marker = fake_stdlib / "ran.txt"
    _write(
        fake_stdlib,
        "b.py",
        f'''\
        """Module b.

            Common margin.
                Kept indent.
            """
        open({str(marker)!r}, "w").write("imported")

        class Box:
            """A box."""

            def open(self):
                """Open it."""
                def inner():
                    """Inner helper."""

            async def later(self):
                """Later."""

        if True:
            def conditional():
                """Defined in a block."""
        x = lambda: "not a docstring"
        ''',
    )
    _write(
        fake_stdlib,
        "a.py",
        '''\
        def first():
            """First \\d with an old escape."""
        ''',
    )
    _write(fake_stdlib, "pkg/__init__.py", '"""Package."""\n')
    _write(fake_stdlib, "pkg.py", '"""Sorts before pkg/."""\n')
    _write(fake_stdlib, "nodoc.py", 'def f():\n    return "x"\n')
    _write(fake_stdlib, "empty.py", '""""""\n')
    _write(fake_stdlib, "broken.py", '"""Broken."""\ndef f(:\n')
    _write(fake_stdlib, "binary.py", b'"""Binary."""\n\x00\xff\xfe')
    _write(fake_stdlib, "latin.py", '# -*- coding: latin-1 -*-\n"""Caf\xe9."""\n'.encode("latin-1"))
    _write(fake_stdlib, "notes.txt", '"""Not Python."""\n')
    for skipped in ("test/t.py", "pkg/tests/t.py", "idlelib/idle_test/t.py", "site-packages/s.py", "__pycache__/c.py"):
        _write(fake_stdlib, skipped, '"""Skipped."""\n')

    text = stdlib_docstrings()
    assert text == "\n\n".join(
        [
            "First \\d with an old escape.",
            "Module b.\n\nCommon margin.\n    Kept indent.",
            "A box.",
            "Open it.",
            "Inner helper.",
            "Later.",
            "Defined in a block.",
            "Café.",
            "Sorts before pkg/.",
            "Package.",
        ]
    )
    assert not marker.exists()
    assert stdlib_docstrings(max_chars=12) == "First \\d wit"


def test_library_without_sources_is_an_error(fake_stdlib):
    with pytest.raises(FileNotFoundError, match=re.escape(str(fake_stdlib))):
        stdlib_docstrings()
