"""The default thread count: the CPUs this process may really use, and why.

In order: ``OMP_NUM_THREADS`` when set (the user's word); else the CPUs of the process's affinity mask, lowered to
a CPU quota of its cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``: a container limited
to 2 CPUs on a 64-core host gets 2 threads), and divided among the MPI ranks that share this machine (each rank
its own cores, no oversubscription). Reading OpenMP's own default is not enough: it counts the affinity mask
only, and a spinning thread on a core that the quota does not grant turns a slowdown into a collapse.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"
# Variables that launchers set to the number of ranks on this node: Open MPI, MPICH/Hydra, Intel MPI, Slurm.
LOCAL_RANK_COUNTS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MPICH_LOCALNRANKS", "SLURM_NTASKS_PER_NODE")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeError):
        return None


def _own_cgroup_dirs(root: Path) -> list[Path]:
    """The cgroup directories of this process (from /proc/self/cgroup, made relative to ``root``), innermost
    first, followed by ``root`` itself: a quota may be set on any ancestor."""
    text = _read(Path("/proc/self/cgroup")) or ""
    dirs = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and (parts[1] == "" or "cpu" in parts[1].split(",")):
            relative = parts[2].lstrip("/")
            for base in (root / relative, root / "cpu" / relative, root / "cpu,cpuacct" / relative):
                while base != root and root in base.parents:
                    dirs.append(base)
                    base = base.parent
    return [*dict.fromkeys(dirs), root, root / "cpu", root / "cpu,cpuacct"]


def cgroup_cpu_limit(root: str | os.PathLike = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), the smallest over its ancestors, or None when
    there is none. ``root`` is where the cgroup file system is mounted; tests point it at fake files."""
    root = Path(root)
    limits = []
    for directory in _own_cgroup_dirs(root):
        v2 = _read(directory / "cpu.max")
        if v2:
            quota, _, period = v2.partition(" ")
            if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
                limits.append(int(quota) / int(period))
        quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and period.isdigit():
            if int(quota) > 0 and int(period) > 0:
                limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def ranks_on_this_machine(environ=os.environ) -> int:
    for name in LOCAL_RANK_COUNTS:
        value = environ.get(name, "").split("(")[0]  # Slurm writes e.g. "4(x2)"
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_threads(environ=os.environ, cgroup_root: str | os.PathLike = CGROUP_ROOT) -> tuple[int, str]:
    """(threads, why): see the module docstring. ``why`` names each limit that decided the count."""
    given = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if given.isdigit() and int(given) > 0:
        return int(given), "OMP_NUM_THREADS"
    threads, why = affinity_cpus(), "affinity"
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None and math.ceil(limit) < threads:
        threads, why = max(1, math.ceil(limit)), "cgroup quota"
    ranks = ranks_on_this_machine(environ)
    # A launcher that binds each rank to its own cores has already divided the machine through the mask.
    if ranks > 1 and affinity_cpus() >= (os.cpu_count() or 1):
        threads, why = max(1, threads // ranks), f"{why}, {ranks} ranks per node"
    return threads, why
