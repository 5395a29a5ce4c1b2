"""Data-parallel training over MPI (mpi4py): one model on several processes, on one machine or many.

Launched with ``mpiexec -n N`` (any MPI: MPICH from ``pip install "rnnfast[mpi]"``, Open MPI, Intel MPI), every
rank holds the same model. Each computes the gradients of its share of every global batch, the gradient arena is
summed across ranks with one Allreduce, and every rank takes the same optimizer step, so the weights stay the same
everywhere. ``fit`` and ``rnnfast train`` do this by themselves; a hand-written loop adds one call,
``allreduce_gradients(model)``, between ``backward`` and the optimizer step.

mpi4py is imported only when the environment shows a launch of several processes, so a single process (or
``mpiexec -n 1``) never loads MPI. Under such a launch, an uncaught exception on any rank prints one line naming
the rank and the reason and aborts the whole job, so that no other rank waits forever in a collective.
"""

from __future__ import annotations

import os
import sys
import time
import zlib

import numpy as np

# World size as launchers publish it: MPICH/Hydra and Intel MPI (PMI), Open MPI, MVAPICH.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


ABORT_GRACE_S = 0.5


class DistributedError(RuntimeError):
    """The ranks of a data-parallel job disagree, or MPI is needed and missing."""


_comm = None
_started = False


def launched_size(environ=os.environ) -> int:
    """The number of processes the MPI launcher started (1 outside a launcher)."""
    for name in SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def _world():
    """COMM_WORLD under a launch of several processes, else None; MPI starts on the first call."""
    global _comm, _started
    if not _started:
        _started = True
        if launched_size() > 1:
            try:
                from mpi4py import MPI
            except ImportError:
                raise DistributedError(
                    f"started as one of {launched_size()} MPI processes, but mpi4py is not installed: "
                    'pip install "rnnfast[mpi]" (or mpi4py for a system MPI)'
                ) from None
            _comm = MPI.COMM_WORLD
            sys.excepthook = _abort_on_uncaught
    return _comm


def _abort_on_uncaught(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):  # Ctrl-C or SIGTERM: training has stopped and saved
        abort("interrupted", 130)
    sys.__excepthook__(kind, value, traceback)
    abort(f"{kind.__name__}: {value}", 1)


def active() -> bool:
    """Whether MPI is running in this process (never starts it)."""
    return _comm is not None


def is_initialized() -> bool:
    """Whether this process is one of several MPI ranks (starts MPI under such a launch)."""
    return _world() is not None


def rank() -> int:
    comm = _world()
    return 0 if comm is None else comm.Get_rank()


def size() -> int:
    comm = _world()
    return 1 if comm is None else comm.Get_size()


def barrier() -> None:
    comm = _world()
    if comm is not None:
        comm.Barrier()


def abort(reason: str, code: int = 1) -> None:
    """Print ``reason`` as one line naming this rank, then end every rank of the job with exit code ``code``."""
    print(f"rnnfast: rank {rank()} of {size()}: {reason}", file=sys.stderr, flush=True)
    # The launcher stops forwarding output once it hears of the abort: give it time to pass the reason on.
    time.sleep(ABORT_GRACE_S)
    _comm.Abort(code)


def fail(message: str, code: int) -> int:
    """Report an error that ends this process: printed (and ``code`` returned) outside MPI; under MPI printed
    with this rank's number, and every rank ends, since the others may be waiting for this one."""
    if _comm is None:
        print(message, file=sys.stderr)
        return code
    abort(message, code)


def share(count: int, part: int | None = None, parts: int | None = None) -> slice:
    """The contiguous part ``part`` of ``parts`` (default: this rank's) of ``count`` items; the first
    ``count % parts`` parts hold one item more."""
    part = rank() if part is None else part
    parts = size() if parts is None else parts
    base, extra = divmod(count, parts)
    start = part * base + min(part, extra)
    return slice(start, start + base + (part < extra))


def allreduce_gradients(model, weight: float | None = None) -> None:
    """Sum ``model``'s gradients across ranks in place, each rank's multiplied by ``weight`` first (default
    ``1 / size()``: the mean over ranks, right when every rank's loss averages over as many items). A no-op
    outside MPI. The sum is one Allreduce of the contiguous gradient arena, whose result MPI computes the same
    way on every rank and in every run with the same number of ranks."""
    comm = _world()
    if comm is None:
        return
    grad = model.parameters().grad
    scale = 1.0 / comm.Get_size() if weight is None else weight
    if scale != 1.0:
        grad *= grad.dtype.type(scale)
    from mpi4py import MPI

    comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)


def broadcast_parameters(model) -> None:
    """Copy rank 0's parameters to every rank, so that training starts from the same weights even where each
    process initialised its model with its own random seed."""
    comm = _world()
    if comm is not None:
        comm.Bcast(model.parameters().data, root=0)


def sum_values(values) -> np.ndarray:
    """Element-wise sums across ranks of a few float64 numbers (counts, loss sums, flags)."""
    values = np.array(values, dtype=np.float64)
    comm = _world()
    if comm is not None:
        from mpi4py import MPI

        comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
    return values


def allgather(obj) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` outside MPI)."""
    comm = _world()
    return [obj] if comm is None else comm.allgather(obj)


def gather_axis(array: np.ndarray, axis: int) -> np.ndarray | None:
    """The ranks' arrays joined along ``axis`` in rank order, on rank 0 (None elsewhere)."""
    comm = _world()
    if comm is None:
        return array
    parts = comm.gather(np.ascontiguousarray(array), root=0)
    return None if parts is None else np.concatenate(parts, axis=axis)


def check_same_weights(model, step: int) -> None:
    """Raise DistributedError unless every rank holds bitwise the same parameters (a checksum of the arena)."""
    if _world() is None:
        return
    checksums = allgather(zlib.crc32(model.parameters().data.view(np.uint8)))
    if len(set(checksums)) > 1:
        differ = [r for r, c in enumerate(checksums) if c != checksums[0]]
        raise DistributedError(
            f"at step {step} the weights of rank(s) {', '.join(map(str, differ))} differ from rank 0's; "
            "the ranks must run the same rnnfast, numpy and MPI on the same data"
        )


__all__ = [
    "is_initialized",
    "rank",
    "size",
    "barrier",
    "allreduce_gradients",
    "broadcast_parameters",
    "DistributedError",
]
