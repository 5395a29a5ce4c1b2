"""Shared fixtures: optional PyTorch, MPI and the shared datasets, which CI requires explicitly, and a
single-thread setting for tiny models."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("RNNFAST_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _required(var: str) -> bool:
    return os.environ.get(var, "") == "1"


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or a skip; with RNNFAST_REQUIRE_TORCH=1 a missing torch fails instead."""
    try:
        import torch as torch_module
    except ImportError:
        if _required("RNNFAST_REQUIRE_TORCH"):
            pytest.fail("RNNFAST_REQUIRE_TORCH=1 but torch is not installed (pip install torch==2.13.0)")
        pytest.skip("torch is not installed")
    return torch_module


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip; with RNNFAST_REQUIRE_DATA=1 a missing folder fails instead."""
    if not SHARED_DATA.is_dir():
        if _required("RNNFAST_REQUIRE_DATA"):
            pytest.fail(f"RNNFAST_REQUIRE_DATA=1 but {SHARED_DATA} does not exist")
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mpiexec() -> str:
    """The mpiexec of this Python's environment (pip's mpich) or of the system, with mpi4py importable; else a
    skip, or a failure with RNNFAST_REQUIRE_MPI=1."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        if _required("RNNFAST_REQUIRE_MPI"):
            pytest.fail('RNNFAST_REQUIRE_MPI=1 but mpi4py or mpiexec is missing (pip install "rnnfast[mpi]")')
        pytest.skip("mpi4py or mpiexec is not installed")
    return found


@pytest.fixture
def one_thread():
    """For tiny models: one thread is fastest and immune to other processes on a shared machine."""
    import rnnfast as rf

    before = rf.get_num_threads()
    rf.set_num_threads(1)
    yield
    rf.set_num_threads(before)
