"""Typed signatures of the compiled core, rnnfast._core (cpp/python/).

Arrays are C-contiguous; "float" means float32 or float64, chosen by the dtype of the array each kernel is typed
by (the first float array), and every other float array of the call must have that same dtype. Shapes: T steps, B
sequences, I inputs, H hidden units, G gates (LSTM 4, GRU 3, RNN 1), N rows, V vocabulary, E embedding width, C
tags, L layers. Every function raises ValueError for an argument of the wrong dtype, shape or value. The kernels
run without the GIL. tests/test_core_stub.py checks that this file and the module agree.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]
Int8Array = npt.NDArray[np.int8]
Cell = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]
LayerWeights = tuple[FloatArray, FloatArray, FloatArray | None, FloatArray | None]  # W_ih, W_hh, b_ih, b_hh
# With weight_dtype "int8": W_ih, W_hh (int8), b_ih, b_hh, W_ih_scale, W_hh_scale
Int8LayerWeights = tuple[Int8Array, Int8Array, Float32Array | None, Float32Array | None, Float32Array, Float32Array]
Isa = Literal["baseline", "avx2", "avx512"]

ISA: Isa | None
"""The instruction set whose float32 kernels are loaded; None until load_kernels."""

# ----- instruction sets, threads, precision ------------------------------------------------------------------

def cpu_features() -> dict[str, bool]:
    """Instruction-set extensions of the running CPU: avx2, fma, avx512f, avx512bw, avx512dq, avx512vl, avx512cd
    (empty off x86-64)."""

def built_isas() -> list[str]:
    """Instruction sets whose kernel library (_core_kernels_<isa>.so) is installed next to this module."""

def load_kernels(isa: Isa) -> None:
    """Load one instruction set's kernels (the CPU must support it; rnnfast/_native.py checks). Once per process:
    the same isa again does nothing, another raises RuntimeError."""

def build_info() -> dict[str, object]:
    """The loaded kernels: isa, float64_isa, openmp, eigen, eigen_simd, compiler, amx_bf16 (bool),
    bf16_products ("amx", "avx512_bf16" or None) and int8_unit ("avx512_vnni", "avx512bw", "avx_vnni", "avx2" or
    "scalar")."""

def set_num_threads(n: int) -> None:
    """Threads for every kernel in this process (values below 1 count as 1)."""

def get_num_threads() -> int: ...
def threads_in_use() -> int: ...
def set_matmul_bfloat16(on: bool) -> None:
    """float32 products with bfloat16 operands (on) or exact float32 ones (off); the caller checks bf16_products."""

def matmul_bfloat16() -> bool: ...

# ----- recurrent layers (one direction of one layer) ---------------------------------------------------------

def workspace_size(cell: Cell, T: int, B: int, H: int) -> int:
    """Elements of a training forward's workspace."""

def sequence_forward(
    cell: Cell,
    x: FloatArray,  # (T, B, I)
    h0: FloatArray,  # (B, H)
    c0: FloatArray | None,  # (B, H), LSTM only
    W_ih: FloatArray,  # (G*H, I)
    W_hh: FloatArray,  # (G*H, H)
    b_ih: FloatArray | None,  # (G*H,)
    b_hh: FloatArray | None,  # (G*H,)
    lengths: IntArray | None,  # (B,) each in 1..T
    reverse: bool,
    training: bool,
    y: FloatArray,  # (T, B, >= column + H), written at [..., column:column + H]
    column: int,
    spare_workspace: FloatArray | None = None,  # (workspace_size,) reused when it fits
    W_ih_scale: Float32Array | None = None,  # (G*H,): W_ih and W_hh are int8 (inference, float32 x)
    W_hh_scale: Float32Array | None = None,  # (G*H,)
) -> tuple[FloatArray, FloatArray | None, FloatArray | None]:
    """Returns (hT (B, H), cT (B, H) or None, workspace (workspace_size,) in training or None)."""

def sequence_backward(
    cell: Cell,
    x: FloatArray,  # (T, B, I)
    workspace: FloatArray,  # (workspace_size,) from the training forward
    W_ih: FloatArray,  # (G*H, I)
    W_hh: FloatArray,  # (G*H, H)
    b_ih: FloatArray | None,  # (G*H,)
    b_hh: FloatArray | None,  # (G*H,)
    lengths: IntArray | None,  # (B,)
    reverse: bool,
    dy: FloatArray,  # (T, B, >= column + H), read at [..., column:column + H]
    column: int,
    dhT: FloatArray | None,  # (B, H)
    dcT: FloatArray | None,  # (B, H), LSTM only
    dx: FloatArray,  # (T, B, I), overwritten, or added to with accumulate_dx
    accumulate_dx: bool,
    dW_ih: FloatArray,  # (G*H, I), accumulated
    dW_hh: FloatArray,  # (G*H, H), accumulated
    db_ih: FloatArray | None,  # (G*H,), accumulated; given exactly when b_ih is
    db_hh: FloatArray | None,  # (G*H,), accumulated; given exactly when b_hh is
) -> tuple[FloatArray, FloatArray | None]:
    """BPTT; returns (dh0 (B, H), dc0 (B, H) or None)."""

# ----- dense layers, loss --------------------------------------------------------------------------------------

def linear_forward(
    x: FloatArray,  # (N, I)
    W: FloatArray,  # (O, I)
    b: FloatArray | None,  # (O,)
    y: FloatArray,  # (N, O), overwritten
) -> None:
    """y = x W^T + b"""

def linear_forward_int8(
    x: Float32Array,  # (N, I)
    W: Int8Array,  # (O, I)
    W_scale: Float32Array,  # (O,)
    b: Float32Array | None,  # (O,)
    y: Float32Array,  # (N, O), overwritten
) -> None:
    """y = x (W * W_scale) ^T + b with x quantized per row at run time (rnnfast.quantize)"""

def int8_exact_products(
    q: Int8Array,  # (m, K), quantized activations in [-64, 63]
    w: Int8Array,  # (n, K)
) -> npt.NDArray[np.int32]:
    """(m, n) = q w^T in int32, computed by the int8 unit in use"""

def int8_quantize_activations(
    x: Float32Array,  # (m, K)
) -> tuple[Int8Array, Float32Array]:
    """(q (m, K), scale (m,)): the run-time activation quantization, x ~ q * scale per row"""

def linear_backward(
    dy: FloatArray,  # (N, O)
    x: FloatArray,  # (N, I)
    W: FloatArray,  # (O, I)
    dx: FloatArray | None,  # (N, I), overwritten
    dW: FloatArray,  # (O, I), accumulated
    db: FloatArray | None,  # (O,), accumulated
) -> None:
    """dx = dy W; dW += dy^T x; db += sum(dy)"""

def embedding_backward(
    ids: IntArray,  # any shape, N ids in 0..V-1
    dy: FloatArray,  # ids.shape + (E,)
    dW: FloatArray,  # (V, E), accumulated
) -> None:
    """dW[ids[n]] += dy[n]"""

def softmax_cross_entropy(
    logits: FloatArray,  # (N, V)
    targets: IntArray,  # (N,) in 0..V-1 or ignore_index
    ignore_index: int,
    dlogits: FloatArray | None,  # (N, V), overwritten; may be logits itself
    grad_scale: float,
) -> tuple[float, int, int]:
    """Returns (summed NLL, counted rows, rows whose argmax is the target); dlogits = grad_scale * (softmax -
    onehot), 0 for ignored rows."""

# ----- optimizer updates over a flat parameter arena (n elements) ----------------------------------------------

def sgd_step(
    params: FloatArray,  # (n,), updated
    grads: FloatArray,  # (n,)
    momentum_buffer: FloatArray | None,  # (n,), required when momentum != 0
    lr: float,
    momentum: float,
    weight_decay: float,
    dampening: float,
    nesterov: bool,
    first_step: bool,
    grad_scale: float = 1.0,  # multiplies each gradient as it is read (the gradients are left as they are)
) -> None: ...
def adam_step(
    params: FloatArray,  # (n,), updated
    grads: FloatArray,  # (n,)
    exp_avg: FloatArray,  # (n,), updated
    exp_avg_sq: FloatArray,  # (n,), updated
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,  # AdamW
    step: int,  # from 1
    grad_scale: float = 1.0,  # multiplies each gradient as it is read (the gradients are left as they are)
) -> None: ...
def sum_of_squares(x: FloatArray) -> float:
    """sum(x**2) over all elements, in a fixed order."""

def scale_in_place(x: FloatArray, factor: float) -> None: ...
def clamp_in_place(x: FloatArray, limit: float) -> None:
    """x = clip(x, -limit, limit)"""

# ----- linear-chain CRF ------------------------------------------------------------------------------------------

def crf_nll(
    emissions: FloatArray,  # (T, B, C)
    tags: IntArray,  # (T, B), 0..C-1 within each length
    lengths: IntArray | None,  # (B,) each in 1..T
    start: FloatArray,  # (C,)
    end: FloatArray,  # (C,)
    trans: FloatArray,  # (C, C)
    demissions: FloatArray | None,  # (T, B, C), overwritten; the four gradients all or none
    dstart: FloatArray | None,  # (C,), accumulated
    dend: FloatArray | None,  # (C,), accumulated
    dtrans: FloatArray | None,  # (C, C), accumulated
    grad_scale: float,
) -> npt.NDArray[np.float64]:
    """Per-sequence negative log-likelihood (B,) float64; gradients of grad_scale * sum(nll)."""

def crf_viterbi(
    emissions: FloatArray,  # (T, B, C)
    lengths: IntArray | None,  # (B,)
    start: FloatArray,  # (C,)
    end: FloatArray,  # (C,)
    trans: FloatArray,  # (C, C)
) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """Best tags (T, B) (-1 at padded positions) and their scores (B,)."""

# ----- generation ------------------------------------------------------------------------------------------------

def generate(
    cell: Cell,
    embedding: FloatArray,  # (V, E)
    layers: list[LayerWeights] | list[Int8LayerWeights],  # per layer
    head_W: FloatArray | Int8Array,  # (V, H)
    head_b: FloatArray | None,  # (V,)
    prompt: IntArray,  # (P,), P >= 1, ids in 0..V-1
    steps: int,
    temperature: float,  # 0 = greedy
    top_k: int,  # 0 = no limit
    top_p: float,  # in (0, 1]
    seed: int,
    h: FloatArray,  # (L, H), initial state in, final state out
    c: FloatArray | None,  # (L, H), LSTM
    weight_dtype: Literal["float32", "bfloat16", "int8"] = "float32",
    head_scale: Float32Array | None = None,  # (V,) with int8 head_W
) -> IntArray:
    """Feeds the prompt, then samples `steps` ids (steps,)."""
