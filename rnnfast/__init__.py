"""rnnfast: fast recurrent neural networks (RNN, LSTM, GRU) on CPUs, with PyTorch-compatible layers."""

from __future__ import annotations


def _compiled_core_dir(path_entries):
    """Where this package's compiled core lies: this directory when it has one (an installed package), else, for
    a source checkout, the first installed rnnfast on ``path_entries`` that has one."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    has_core = lambda d: any(d.glob("_core*.so")) or any(d.glob("_core*.pyd"))  # noqa: E731
    if has_core(here) or not (here.parent / "pyproject.toml").is_file():
        return here
    for entry in path_entries:
        candidate = Path(entry or ".").resolve() / "rnnfast"
        if candidate != here and (candidate / "__init__.py").is_file() and has_core(candidate):
            return candidate
    return here


# `python -m pytest` and `python -c` from the repository root put the source checkout, which holds no compiled
# core, first on sys.path: its submodules then come from the installed build, so both test what is installed.
__path__ = [str(_compiled_core_dir(__import__("sys").path))]

from . import (  # noqa: E402
    _native,  # noqa: E402
    audio,
    data,
    distributed,
    metrics,
    onnx,
    optim,
    text,
)
from ._native import available_isas, core  # noqa: E402
from .io import Checkpoint, CheckpointError, load, save
from .layers import Dropout, Embedding, Linear
from .models import LanguageModel, cross_entropy
from .module import Module, Parameters
from .optim import clip_grad_norm, clip_grad_value
from .recurrent import GRU, LSTM, RNN
from .seqmodels import CRF, Forecaster, SequenceClassifier, SequenceTagger

__version__ = "0.1.0"


MAX_THREADS = 4096  # far beyond any CPU's cores, and small enough for the native int the runtime takes


def set_num_threads(n: int) -> None:
    """Threads used by every kernel in this process, 1 to ``MAX_THREADS``. The default is ``OMP_NUM_THREADS``,
    else the CPUs this process may use: its affinity mask, lowered to its cgroup's CPU quota and shared among the
    MPI ranks on the machine (``build_info()["threads_reason"]`` says which). While other processes hold some of
    the cores, the kernels run with fewer threads on their own (``build_info()["threads_in_use"]``) and return to
    this count when the cores are free again."""
    from ._checks import integer

    _native.set_threads(integer(n, "n", 1, MAX_THREADS), "rf.set_num_threads")


def get_num_threads() -> int:
    return int(core.get_num_threads())


MATMUL_PRECISIONS = ("float32", "bfloat16")


def set_matmul_precision(precision: str) -> None:
    """How float32 models multiply matrices, process-wide: ``"float32"`` (the default, exact float32 products)
    or ``"bfloat16"``: every product's operands are rounded to bfloat16 and summed in float32 on the CPU's AMX
    tiles or AVX512-BF16 instructions, as PyTorch's bfloat16 autocast does, while weights, cell math, loss and
    optimizer stay float32. bfloat16 needs a CPU with AMX-BF16 or AVX512-BF16 (``build_info()["bf16_products"]``
    names the one in use); float64 models are never affected."""
    from ._checks import choice

    choice(precision, "precision", MATMUL_PRECISIONS)
    if precision == "bfloat16" and not core.build_info()["bf16_products"]:
        raise ValueError(
            f"precision: got 'bfloat16', which needs AMX-BF16 or AVX512-BF16, and this machine runs the "
            f"{core.ISA!r} module without either (build_info()['bf16_products'] is None); use 'float32'"
        )
    core.set_matmul_bfloat16(on=precision == "bfloat16")


def get_matmul_precision() -> str:
    return "bfloat16" if core.matmul_bfloat16() else "float32"


def build_info() -> dict:
    """The native core in use: instruction set, OpenMP runtime, thread count, Eigen version and compiler."""
    info = dict(core.build_info())
    info["threads"] = get_num_threads()
    info["threads_reason"] = _native.threads_reason
    # Fewer than "threads" while other processes hold some of the cores: the kernels then run narrower teams.
    info["threads_in_use"] = int(core.threads_in_use())
    info["matmul_precision"] = get_matmul_precision()
    info["available_isas"] = available_isas()
    info["version"] = __version__
    return info


__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "Embedding",
    "Linear",
    "Dropout",
    "LanguageModel",
    "cross_entropy",
    "Module",
    "Parameters",
    "optim",
    "clip_grad_norm",
    "clip_grad_value",
    "set_num_threads",
    "get_num_threads",
    "set_matmul_precision",
    "get_matmul_precision",
    "build_info",
    "text",
    "data",
    "distributed",
    "metrics",
    "audio",
    "onnx",
    "save",
    "load",
    "Checkpoint",
    "CheckpointError",
    "SequenceClassifier",
    "SequenceTagger",
    "Forecaster",
    "CRF",
]
