"""Numerical reference shared by the gradient tests."""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def central_differences(f, x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """d f / d x for a scalar function of the array ``x`` (perturbed in place and restored)."""
    grad = np.empty_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f()
        flat[i] = saved - eps
        minus = f()
        flat[i] = saved
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad
