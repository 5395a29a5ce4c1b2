"""Loads the native core built for the best instruction set this CPU supports.

The same C++ sources are compiled once per instruction set (``_core_baseline``, ``_core_avx2``,
``_core_avx512``), so a wheel runs on any x86-64 CPU and still uses wide vectors where they exist.
``RNNFAST_ISA=baseline|avx2|avx512`` overrides the choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

ISAS = ("baseline", "avx2", "avx512")
_REQUIRED_FEATURES = {
    "baseline": (),
    "avx2": ("avx2", "fma"),
    "avx512": ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"),
}


def _import(isa: str):
    return importlib.import_module(f"rnnfast._core_{isa}")


def available_isas() -> list[str]:
    """Instruction-set variants that are both built into this install and supported by this CPU."""
    baseline = _import("baseline")
    features = baseline.cpu_features()
    # A variant's own static initialisers may already use its instructions, so never import one the CPU lacks.
    return [
        isa
        for isa in ISAS
        if all(features.get(f, False) for f in _REQUIRED_FEATURES[isa])
        and importlib.util.find_spec(f"rnnfast._core_{isa}") is not None
    ]


def _load():
    usable = available_isas()
    requested = os.environ.get("RNNFAST_ISA", "").strip().lower()
    if requested:
        if requested not in ISAS:
            raise ImportError(f"RNNFAST_ISA: got {requested!r}, expected one of {', '.join(ISAS)}")
        if requested not in usable:
            raise ImportError(
                f"RNNFAST_ISA: {requested!r} is not usable here (built and supported: {', '.join(usable)})"
            )
        return _import(requested)
    return _import(usable[-1])


core = _load()


def _single_threaded_after_fork() -> None:
    # GNU OpenMP's thread pool does not survive fork(): a forked child that opened a parallel region would hang.
    # One thread needs no pool; a child may raise the count again only if it never forks with threads running.
    core.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_single_threaded_after_fork)
