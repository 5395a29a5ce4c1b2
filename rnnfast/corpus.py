"""A text corpus that every Python installation already has: the docstrings of the standard library.

About 1-2 MB of English prose with code fragments, for examples, smoke tests and benchmarks that must run
without downloading anything. The sources are parsed with ``ast`` and never imported, because importing
modules such as ``antigravity`` or ``turtle`` has side effects.
"""

from __future__ import annotations

import ast
import os
import sysconfig
import warnings

from . import _checks

# Test suites are code samples rather than documentation; site-packages is not the standard library.
_SKIPPED_DIRECTORIES = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _source_files(root: str) -> list[str]:
    """The .py files under ``root``, sorted by their relative path so the order is the same on every OS."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in _SKIPPED_DIRECTORIES]
        found += [os.path.join(directory, f) for f in files if f.endswith(".py")]
    return sorted(found, key=lambda p: os.path.relpath(p, root).replace(os.sep, "/"))


def _collect_docstrings(node: ast.AST, out: list[str]) -> None:
    """Append the docstrings of ``node`` and of everything defined inside it, in source order."""
    if isinstance(node, _DOCUMENTED):
        doc = ast.get_docstring(node, clean=True)
        if doc:
            out.append(doc)
    # Definitions only occur in statement lists (also inside if/try/with/match blocks), never in expressions,
    # so only those lists are walked: visiting every expression would double the time.
    for block in _STATEMENT_LISTS:
        for child in getattr(node, block, ()):
            _collect_docstrings(child, out)


def _file_docstrings(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            source = f.read()
        with warnings.catch_warnings():
            # Old escape sequences in some sources warn; under warnings-as-errors they would be skipped.
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except (OSError, SyntaxError, ValueError, RecursionError):
        return []
    docs: list[str] = []
    _collect_docstrings(tree, docs)
    return docs


def stdlib_docstrings(max_chars: int | None = None) -> str:
    """Module, class and function docstrings of the standard library's .py files, cleaned with
    ``inspect.cleandoc`` and separated by blank lines, files in sorted path order. At most ``max_chars``
    characters (a prefix of the full text). Takes a few seconds for the whole library."""
    if max_chars is not None:
        max_chars = _checks.positive_int(max_chars, "max_chars")
    root = sysconfig.get_paths()["stdlib"]
    pieces, size = [], 0
    for path in _source_files(root):
        for doc in _file_docstrings(path):
            pieces.append(doc)
            size += len(doc) + 2
        if max_chars is not None and size >= max_chars:
            break
    if not pieces:
        raise FileNotFoundError(
            f"no standard-library sources with docstrings under {root}; this Python "
            f"installation ships without its .py files"
        )
    text = "\n\n".join(pieces)
    return text if max_chars is None else text[:max_chars]
