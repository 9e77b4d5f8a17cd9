"""Compact task vectors: the encodings and their expansions, one tensor at a time.

* top-k: the ``k = magnitude_k(numel, fraction)`` largest-magnitude entries as flat indices and values, the rest
  zero (the trimming of TIES, Yadav et al. 2023, arXiv 2306.01708, used for storage as in TALL masks, Wang et
  al. 2024, arXiv 2405.07813). Ties at the cut are broken by position as in ``ops.sparsify``.
* low rank: the best rank-r approximation of a matrix by truncated SVD (Eckart-Young), stored as two factors
  ``a = U_r diag(S_r)`` (m x r) and ``b = Vh_r`` (r x n), as in task-singular-vector merging (Gargiulo et al.
  2025, arXiv 2412.00081) and LoRA extraction.
* int8 / int4: symmetric per-array quantization, ``q = round(x / scale)`` with ``scale = max|x| / qmax``
  (qmax 127 for int8, 7 for int4), so every entry is off by at most ``scale / 2`` (as in "Task Vector
  Quantization for Memory-Efficient Model Merging", Kim et al. 2025). int4 codes ``q + 8`` (1..15) are packed
  two per byte, the even flat position in the low nibble.
"""

from __future__ import annotations

import math

import torch

from asr_analogy.ops.sparsify import magnitude_k, magnitude_keys, top_k_cuts

QMAX = {8: 127, 4: 7}


def topk_encode(x: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices, values)`` of the ``magnitude_k(numel, fraction)`` largest ``|x|`` (flat positions, ascending;
    int32 when they fit, else int64; values in x's dtype). fraction in (0, 1]."""
    flat = x.reshape(-1)
    k = magnitude_k(flat.numel(), fraction)
    (cut,) = top_k_cuts(lambda: [flat], [k], flat.numel())
    mask, _ = cut.mask(magnitude_keys(flat))
    index = mask.nonzero().reshape(-1)
    index_dtype = torch.int32 if flat.numel() < 2**31 else torch.int64
    return index.to(index_dtype), flat[index].clone()


def topk_decode(indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The dense tensor of ``shape`` holding ``values`` at flat ``indices``, zeros elsewhere."""
    out = torch.zeros(math.prod(shape), dtype=values.dtype)
    out[indices.long()] = values
    return out.reshape(shape)


def lowrank_encode(x: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(a, b)`` with ``a @ b`` the best rank-``min(rank, m, n)`` approximation of the matrix x (m x n),
    computed in float32 (float64 for float64): a = U_r diag(S_r) (m x r), b = Vh_r (r x n)."""
    work = x.to(torch.promote_types(x.dtype, torch.float32))
    u, s, vh = torch.linalg.svd(work, full_matrices=False)
    r = max(1, min(int(rank), s.numel()))
    return (u[:, :r] * s[:r]).contiguous(), vh[:r].contiguous()


def lowrank_decode(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (m x n)."""
    return a @ b


def quantize(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """``(codes, scale)`` of the flattened x: int8 codes for 8 bits, packed uint8 (ceil(n/2) bytes) for 4 bits.
    ``scale = max|x| / QMAX[bits]`` in float32 (0 for an all-zero x)."""
    flat = x.reshape(-1).to(torch.float32)
    qmax = QMAX[bits]
    peak = float(flat.abs().max()) if flat.numel() else 0.0
    scale = peak / qmax if peak > 0 else 0.0
    q = torch.zeros_like(flat) if scale == 0 else torch.clamp(torch.round(flat / scale), -qmax, qmax)
    if bits == 8:
        return q.to(torch.int8), scale
    codes = (q + 8).to(torch.uint8)
    if codes.numel() % 2:
        codes = torch.cat([codes, torch.tensor([8], dtype=torch.uint8)])
    return (codes[0::2] | (codes[1::2] << 4)).contiguous(), scale


def dequantize(codes: torch.Tensor, scale: float, bits: int, numel: int) -> torch.Tensor:
    """The ``numel`` float32 values ``q * scale`` from ``quantize``'s codes."""
    if bits == 8:
        q = codes.to(torch.float32)
    else:
        pairs = torch.stack([codes & 0x0F, codes >> 4], dim=1).reshape(-1)[:numel]
        q = pairs.to(torch.float32) - 8
    return q * scale
