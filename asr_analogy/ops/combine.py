"""The generalized task-arithmetic step that every delta-based merge shares.

    merged = anchor + lambda * normalize?( sum_i w_i * sparsify_i(delta_i) [restricted to the elected sign] )

Task Arithmetic (Ilharco et al. 2023, arXiv 2212.04089) is the plain weighted sum; TIES (Yadav et al. 2023,
arXiv 2306.01708) adds magnitude trimming and sign consensus; DARE (Yu et al. 2024, arXiv 2311.03099) and
Model Breadcrumbs (Davari & Belilovsky 2023, arXiv 2312.06795) change the sparsification. Sparsification
lives in ``ops.sparsify``; this module does the weighting, consensus, normalization and lambda, elementwise,
so it can run on chunks of a streamed tensor.

Normalization follows mergekit: without consensus the sum is divided by the sum of the weights (left as is
when that is below 1e-8 in magnitude); with consensus each entry is divided by the weights of the deltas
that agree with the elected sign there (1 where none agree).
"""

from __future__ import annotations

from typing import Sequence

import torch

from asr_analogy.ops.consensus import disjoint_merge


def combine_deltas(
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    *,
    consensus: str | None = None,
    normalize: bool = False,
    lam: float = 1.0,
    inplace: bool = False,
) -> torch.Tensor:
    """lambda * normalize?(sum_i w_i delta_i), with optional TIES sign consensus ("sum" or "count").

    deltas: M tensors of one shape and floating dtype (already sparsified); weights: M floats (negative
    weights negate). Arithmetic happens in the deltas' dtype, in the order mergekit uses (each delta times
    its weight, then summed in order). With ``inplace`` the deltas are used as scratch space (overwritten)
    and nothing of their size is allocated without consensus. Returns the merged delta, same shape and dtype.
    """
    if not deltas:
        raise ValueError("combine_deltas needs at least one delta")
    dtype, device = deltas[0].dtype, deltas[0].device
    w = torch.tensor(list(weights), dtype=dtype, device=device)
    if inplace:
        weighted = list(deltas)
        for i, d in enumerate(weighted):
            d.mul_(w[i])
    else:
        weighted = [d * w[i] for i, d in enumerate(deltas)]
    if consensus:
        mixed = disjoint_merge(weighted, w, consensus, normalize)
    else:
        mixed = weighted[0]
        for d in weighted[1:]:
            mixed += d
        if normalize:
            total = w.sum()
            if total.abs() >= 1e-8:
                mixed /= total
    if lam != 1:
        mixed *= lam
    return mixed


def generalized_task_arithmetic(
    anchor: torch.Tensor, deltas: Sequence[torch.Tensor], weights: Sequence[float], *, out: torch.Tensor | None = None,
    **combine,
) -> torch.Tensor:
    """anchor + ``combine_deltas(deltas, weights, **combine)`` in ``anchor``'s dtype (deltas must share it);
    written into ``out`` when given. ``combine``: consensus, normalize, lam, inplace (see ``combine_deltas``)."""
    mixed = combine_deltas(deltas, weights, **combine)
    if out is not None:
        return torch.add(anchor, mixed, out=out)
    return (anchor + mixed).to(anchor.dtype)
