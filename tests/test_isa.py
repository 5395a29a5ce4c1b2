"""Instruction-set variants: every variant this machine can run is importable, reports itself, and passes the
numerics suites; RNNFAST_ISA selects a variant and refuses unknown or unusable ones; the variants' kernel libraries
share no symbol."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rnnfast as rf
from rnnfast import _native

TESTS = Path(__file__).resolve().parent


def run_python(code: str, isa: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RNNFAST_ISA", None)
    if isa is not None:
        env["RNNFAST_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_the_default_is_the_widest_usable_variant():
    usable = _native.available_isas()
    assert usable[0] == "baseline"
    result = run_python("import rnnfast as rf; print(rf.build_info()['isa'])", None)
    assert result.stdout.strip() == usable[-1], result.stderr
    info = rf.build_info()
    for key in ("isa", "openmp", "threads", "eigen", "compiler", "available_isas"):
        assert key in info, key
    assert info["eigen"].startswith("3.4")
    assert info["float64_isa"] == "baseline"


@pytest.mark.parametrize("isa", _native.available_isas())
def test_each_variant_is_selectable(isa):
    result = run_python("import rnnfast as rf; print(rf.build_info()['isa'])", isa)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == isa


def test_unknown_variant_is_refused_with_the_choices():
    result = run_python("import rnnfast", "sse9")
    assert result.returncode != 0
    assert "RNNFAST_ISA" in result.stderr and "baseline" in result.stderr


@pytest.mark.parametrize("isa", [isa for isa in _native.available_isas() if isa != _native.available_isas()[-1]])
def test_numerics_suites_pass_on_every_other_variant(isa):
    """The default variant runs the whole suite in this process; the others run the numerics files here."""
    env = dict(os.environ, RNNFAST_ISA=isa)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            str(TESTS / "test_gradcheck.py"),
            str(TESTS / "test_torch_parity.py"),
            str(TESTS / "test_loss_lm.py"),
            str(TESTS / "test_generate.py"),
            str(TESTS / "test_int8.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("nm") is None, reason="needs Linux and nm")
def test_each_kernel_library_exports_only_its_entry_point():
    """Hidden visibility and a version script keep every instantiation (ours, Eigen's, the standard library's) inside
    its own library, so none compiled for one instruction set can be bound to a caller built for another."""
    directory = Path(_native.core.__file__).parent
    for isa in _native.core.built_isas():
        library = directory / f"_core_kernels_{isa}.so"
        result = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert [line.split()[-1] for line in result.stdout.splitlines() if line.strip()] == ["rnnfast_kernel_table"]
