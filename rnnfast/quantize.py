"""Weight quantization for inference: int8 weight matrices with one float32 scale per output row.

``model.quantize("int8")`` returns an inference-only copy of a float32 model whose recurrent, input and output
weight matrices are int8: each row ``w`` becomes ``q = rint(w * 64 / max|w|)`` with scale ``max|w| / 64``
(symmetric, 129 levels). Products quantize their activations per row and step at run time to 7 bits, accumulate
exactly in int32 and rescale to float32; biases, embeddings, cell math, softmax and sampling stay float32. Each
product reads a quarter of the weight bytes of float32. cpp/include/rnnfast/int8.hpp says why both sides use 7
bits: four such products fit int16 exactly, which makes the AVX2 kernels a third cheaper per product.
"""

from __future__ import annotations

import numpy as np

WEIGHT_DTYPES = ("int8",)
WEIGHT_MAX = 64  # rnnfast::int8::kNarrowWeightMax


def quantize_rows(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q int8, scale float32 per row) with W ~ q * scale[:, None]; an all-zero row gets scale 0."""
    W = np.asarray(W, dtype=np.float32)
    amax = np.abs(W).max(axis=1)
    scale = (amax / np.float32(WEIGHT_MAX)).astype(np.float32)
    inverse = np.divide(np.float32(WEIGHT_MAX), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.clip(np.rint(W * inverse[:, None]), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, scale


def check_scale(scale, name: str, rows: int) -> str | None:
    """A problem with a loaded scale array, or None."""
    if not isinstance(scale, np.ndarray) or scale.dtype != np.float32 or scale.shape != (rows,):
        got = f"{scale.dtype} {scale.shape}" if isinstance(scale, np.ndarray) else type(scale).__name__
        return f"{name} is {got}, expected float32 ({rows},)"
    if not (np.isfinite(scale).all() and (scale >= 0).all()):
        return f"{name} holds a negative or non-finite scale"
    return None
