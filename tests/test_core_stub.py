"""rnnfast/_core.pyi and the compiled module agree (names, parameters, defaults), and the package calls the core
only with keyword arguments that the stub names: neither side can drift from the other unnoticed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rnnfast._native import core

PACKAGE = Path(__file__).resolve().parents[1] / "rnnfast"
STUB = PACKAGE / "_core.pyi"


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(), filename=str(STUB))


def stub_functions() -> dict[str, list[tuple[str, bool]]]:
    """name -> [(parameter, has a default)] for each function of the stub."""
    out = {}
    for node in stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            n_defaults = len(node.args.defaults)
            positional = node.args.posonlyargs + node.args.args
            with_default = {p.arg for p in positional[len(positional) - n_defaults :]}
            with_default |= {p.arg for p, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None}
            out[node.name] = [(p.arg, p.arg in with_default) for p in params]
    return out


def split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current)
    return parts


def module_signature(name: str) -> list[tuple[str, bool]]:
    """[(parameter, has a default)] from the signature line pybind11 writes at the top of each docstring."""
    doc = getattr(core, name).__doc__ or ""
    first = doc.lstrip().splitlines()[0]
    match = re.match(rf"{name}\((.*)\)\s*->", first)
    assert match, f"{name}: no signature line in its docstring: {first!r}"
    params = []
    for part in split_top_level(match.group(1)):
        head, _, default = part.partition("=")
        params.append((head.split(":")[0].strip(), bool(default.strip())))
    return params


def module_functions() -> set[str]:
    return {name for name in dir(core) if not name.startswith("_") and callable(getattr(core, name))}


def test_the_stub_names_every_function_of_the_module_and_nothing_else():
    assert set(stub_functions()) == module_functions()


@pytest.mark.parametrize("name", sorted(module_functions()))
def test_parameters_and_defaults_match(name):
    assert stub_functions()[name] == module_signature(name)


def test_the_stub_declares_the_module_attributes():
    declared = {
        node.target.id
        for node in stub_tree().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    attributes = {name for name in dir(core) if not name.startswith("_") and not callable(getattr(core, name))}
    assert attributes == declared
    assert core.ISA in ("baseline", "avx2", "avx512")


def core_calls():
    """Every call `core.<name>(...)` in the package's sources."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "core"
            ):
                yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", node


def test_the_package_calls_the_core_with_keywords_the_stub_names():
    functions = stub_functions()
    calls = list(core_calls())
    assert len(calls) > 20  # the scan sees the call sites
    for where, call in calls:
        name = call.func.attr
        assert name in functions, f"{where}: core.{name} is not in _core.pyi"
        # One argument cannot go to the wrong parameter; two or more go by name.
        assert len(call.args) + len(call.keywords) < 2 or not call.args, (
            f"{where}: core.{name} called with positional arguments"
        )
        params = [p for p, _ in functions[name]]
        required = {p for p, has_default in functions[name] if not has_default}
        given = {k.arg for k in call.keywords} | set(params[: len(call.args)])
        assert None not in given, f"{where}: core.{name} called with **kwargs"
        assert given <= set(params), f"{where}: core.{name} got {sorted(given - params)}, not parameters of the stub"
        assert required <= given, f"{where}: core.{name} misses {sorted(required - given)}"
