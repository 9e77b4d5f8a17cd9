"""Interpolation between whole models: weighted linear average and spherical interpolation.

Linear ("model soups"): Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models
improves accuracy without increasing inference time", ICML 2022 (arXiv 2203.05482).
SLERP: Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985; applied to each weight tensor as
one flattened vector, falling back to linear interpolation when the two are (nearly) colinear.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, otherwise float32 (half precision is upcast for the arithmetic)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def linear(tensors: Sequence[torch.Tensor], weights: Sequence[float], normalize: bool = True) -> torch.Tensor:
    """sum_i w_i * x_i, divided by sum_i w_i when ``normalize``.

    tensors: M tensors of one shape; computed in float32 (float64 for float64 inputs), accumulated in the
    given order, returned in the first tensor's dtype.
    """
    first = tensors[0]
    dtype = work_dtype(first.dtype)
    w = torch.tensor(list(weights), dtype=dtype, device=first.device)
    out = torch.zeros(first.shape, dtype=dtype, device=first.device)
    for x, wi in zip(tensors, w):
        out.add_(x.to(dtype) * wi)
    if normalize:
        out /= w.sum()
    return out.to(first.dtype)


def slerp_coefficients(t: float, dot: float, dot_threshold: float = 0.9995) -> tuple[float, float]:
    """Coefficients (c0, c1) with slerp = c0 * v0 + c1 * v1, given the cosine ``dot`` between v0 and v1.

    When ``|dot| > dot_threshold`` the vectors are treated as colinear and (1 - t, t) is returned (lerp); so are
    vectors whose angle has no usable sine (colinear under a ``dot_threshold`` of 1 or more).
    """
    dot = max(-1.0, min(1.0, dot))
    if abs(dot) > dot_threshold:
        return 1.0 - t, t
    theta = math.acos(dot)
    s = math.sin(theta)
    if s < 1e-12:
        return 1.0 - t, t
    return math.sin((1.0 - t) * theta) / s, math.sin(t * theta) / s


def slerp_cosine(sq0: float, sq1: float, dot: float, eps: float = 1e-8) -> float:
    """Cosine between two vectors from their squared norms and raw dot product; a norm <= eps counts as 1
    (so a zero vector gives cosine 0)."""
    n0 = math.sqrt(sq0)
    n1 = math.sqrt(sq1)
    n0 = n0 if n0 > eps else 1.0
    n1 = n1 if n1 > eps else 1.0
    return dot / (n0 * n1)


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995, eps: float = 1e-8) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) from ``v0`` (t=0) to ``v1`` (t=1), over the flattened tensors.

    Both are treated as single vectors; the angle comes from their normalized dot product, and the result
    c0 * v0 + c1 * v1 uses the unnormalized tensors. Colinear or antipodal inputs (|cos| > dot_threshold) fall
    back to linear interpolation. Computed in float32 (float64 for float64 inputs), returned in v0's dtype.
    """
    dtype = work_dtype(v0.dtype)
    a = v0.reshape(-1).to(dtype)
    b = v1.reshape(-1).to(dtype)
    cos = slerp_cosine(float(a.double().square().sum()), float(b.double().square().sum()), float((a.double() * b.double()).sum()), eps)
    c0, c1 = slerp_coefficients(t, cos, dot_threshold)
    return (c0 * a + c1 * b).reshape(v0.shape).to(v0.dtype)
