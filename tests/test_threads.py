"""The default thread count: OMP_NUM_THREADS, the affinity mask, cgroup v1 and v2 CPU quotas (fake files under a
root the reader is pointed at) and MPI ranks sharing the machine; and build_info's account of the choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rnnfast import _threads

CPUS = _threads.affinity_cpus()


def fake_cgroup(tmp_path, files: dict):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "300000 100000\n", "cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1.0),
        ({}, None),
        ({"cpu.max": "garbage"}, None),
    ],
)
def test_cgroup_quota_files(tmp_path, files, limit):
    assert _threads.cgroup_cpu_limit(fake_cgroup(tmp_path, files)) == limit


def test_a_quota_below_the_affinity_mask_decides(tmp_path):
    root = fake_cgroup(tmp_path, {"cpu.max": "100000 100000"})
    threads, why = _threads.default_threads({}, root)
    assert (threads, why) == ((1, "cgroup quota") if CPUS > 1 else (1, "affinity"))
    # A quota of 1.5 CPUs still lets two threads run part of the time: rounded up.
    root = fake_cgroup(tmp_path, {"cpu.max": "150000 100000"})
    assert _threads.default_threads({}, root)[0] == min(CPUS, 2)


def test_omp_num_threads_is_the_users_word(tmp_path):
    root = fake_cgroup(tmp_path, {"cpu.max": "100000 100000"})
    assert _threads.default_threads({"OMP_NUM_THREADS": "3"}, root) == (3, "OMP_NUM_THREADS")
    assert _threads.default_threads({"OMP_NUM_THREADS": "4,2"}, root) == (4, "OMP_NUM_THREADS")
    assert _threads.default_threads({"OMP_NUM_THREADS": "zero"}, tmp_path / "none")[1] == "affinity"


def test_mpi_ranks_on_the_machine_share_its_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(_threads, "affinity_cpus", lambda: 16)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert _threads.default_threads({"OMPI_COMM_WORLD_LOCAL_SIZE": "4"}, tmp_path) == (4, "affinity, 4 ranks per node")
    assert _threads.default_threads({"MPI_LOCALNRANKS": "32"}, tmp_path)[0] == 1
    assert _threads.default_threads({"SLURM_NTASKS_PER_NODE": "2(x3)"}, tmp_path)[0] == 8
    # A launcher that bound each rank to 4 of the 16 cores has divided the machine already.
    monkeypatch.setattr(_threads, "affinity_cpus", lambda: 4)
    assert _threads.default_threads({"OMPI_COMM_WORLD_LOCAL_SIZE": "4"}, tmp_path) == (4, "affinity")


def child_build_info(code_before: str = "", env_extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(env_extra or {})
    code = (
        code_before + "import json, rnnfast as rf; info = rf.build_info(); "
        "print(json.dumps({'threads': info['threads'], 'why': info['threads_reason']}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks on this OS")
def test_an_affinity_mask_of_one_cpu_gives_one_thread():
    one = min(os.sched_getaffinity(0))
    assert child_build_info(f"import os; os.sched_setaffinity(0, {{{one}}}); ") == {"threads": 1, "why": "affinity"}


def test_build_info_says_why():
    assert child_build_info(env_extra={"OMP_NUM_THREADS": "3"}) == {"threads": 3, "why": "OMP_NUM_THREADS"}
    info = child_build_info("import rnnfast as rf; rf.set_num_threads(2); ")
    assert info == {"threads": 2, "why": "rf.set_num_threads"}


def test_rnnfast_leaves_other_libraries_threads_alone(torch):
    """Waiting policy and thread counts are rnnfast's own: importing it and running a kernel sets no OpenMP
    environment variable and no runtime-wide count that PyTorch or numpy, loaded first or later, would read."""
    code = (
        "import os, json; import torch; torch.set_num_threads(1); "
        "before = {k: v for k, v in os.environ.items() if k.startswith(('OMP_', 'GOMP_', 'KMP_'))}; "
        "import numpy as np, rnnfast as rf; rf.set_num_threads(2); "
        "rf.LSTM(64, 256)(np.ones((5, 8, 64), np.float32)); "
        "after = {k: v for k, v in os.environ.items() if k.startswith(('OMP_', 'GOMP_', 'KMP_'))}; "
        "print(json.dumps([before == after, torch.get_num_threads(), rf.get_num_threads()]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, 1, 2]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks on this OS")
def test_a_team_held_back_from_its_cores_runs_narrower():
    """Two threads asked for on one CPU: each waits for the core while the other runs, the kernels see it and run
    with one thread; the setting itself stays what the user asked for, and results do not change."""
    one = min(os.sched_getaffinity(0))
    code = (
        f"import os, json; os.sched_setaffinity(0, {{{one}}}); import numpy as np, rnnfast as rf; "
        "rf.set_num_threads(2); layer = rf.LSTM(256, 256, seed=0); "
        "x = np.random.default_rng(0).standard_normal((60, 64, 256)).astype(np.float32); "
        "first = rf.build_info()['threads_in_use']; outputs = [layer(x)[0] for _ in range(4)]; "
        "info = rf.build_info(); "
        "print(json.dumps([first, info['threads_in_use'], info['threads'], "
        "all(np.array_equal(o, outputs[0]) for o in outputs)]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [2, 1, 2, True]
