"""Loads the native core with the kernels built for the best instruction set this CPU supports.

The bindings are one extension module, ``_core``, compiled once for any x86-64 CPU. The kernels are compiled once
per instruction set into libraries next to it (``_core_kernels_baseline.so``, ``_core_kernels_avx2.so``,
``_core_kernels_avx512.so``), and ``_core`` calls the ones loaded here, so a wheel runs on any x86-64 CPU and
still uses wide vectors where they exist. ``RNNFAST_ISA=baseline|avx2|avx512`` overrides the choice. float64
kernels (gradient checks, references) always come from the baseline library.
"""

from __future__ import annotations

import os

from . import _core as core
from ._threads import default_threads

ISAS = ("baseline", "avx2", "avx512")
_REQUIRED_FEATURES = {
    "baseline": (),
    "avx2": ("avx2", "fma"),
    "avx512": ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"),
}


def available_isas() -> list[str]:
    """Instruction-set variants that are both built into this install and supported by this CPU."""
    features = core.cpu_features()
    built = set(core.built_isas())
    # A variant's own static initialisers may already use its instructions, so never load one the CPU lacks.
    return [isa for isa in ISAS if isa in built and all(features.get(f, False) for f in _REQUIRED_FEATURES[isa])]


def _load() -> None:
    usable = available_isas()
    if not usable:
        raise ImportError(f"rnnfast: no kernel library found next to {core.__file__} (reinstall the package)")
    requested = os.environ.get("RNNFAST_ISA", "").strip().lower()
    if requested:
        if requested not in ISAS:
            raise ImportError(f"RNNFAST_ISA: got {requested!r}, expected one of {', '.join(ISAS)}")
        if requested not in usable:
            raise ImportError(
                f"RNNFAST_ISA: {requested!r} is not usable here (built and supported: {', '.join(usable)})"
            )
        core.load_kernels(isa=requested)
    else:
        core.load_kernels(isa=usable[-1])


_load()
# Why the kernels use as many threads as they do (rf.build_info()["threads_reason"]).
threads_reason = "affinity"


def set_threads(n: int, reason: str) -> None:
    global threads_reason
    core.set_num_threads(n=n)
    threads_reason = reason


set_threads(*default_threads())


def _single_threaded_after_fork() -> None:
    # GNU OpenMP's thread pool does not survive fork(): a forked child that opened a parallel region would hang.
    # One thread needs no pool; a child may raise the count again only if it never forks with threads running.
    set_threads(1, "forked child")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_single_threaded_after_fork)
