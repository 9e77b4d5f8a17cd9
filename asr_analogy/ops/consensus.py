"""TIES sign consensus and disjoint merge.

TIES-Merging: Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", NeurIPS 2023
(arXiv 2306.01708). After trimming, each parameter gets the sign that carries the most total mass across the
task vectors ("sum", the paper's election) or the sign most task vectors agree on ("count", a frequency vote);
only entries that agree with the elected sign are averaged ("disjoint merge").
"""

from __future__ import annotations

from typing import Sequence

import torch


def elect_sign(deltas: Sequence[torch.Tensor], method: str = "sum") -> torch.Tensor:
    """Elected sign per entry, +1.0 or -1.0 (a tie counts as positive), in the deltas' dtype.

    deltas: M tensors of one shape (already weighted and trimmed). ``method="sum"``: sign of the sum of the
    entries (total mass, TIES). ``method="count"``: sign of the sum of their signs (frequency).
    """
    if method == "sum":
        total = deltas[0].clone()
        for d in deltas[1:]:
            total += d
    elif method == "count":
        total = torch.sign(deltas[0])
        for d in deltas[1:]:
            total += torch.sign(d)
    else:
        raise ValueError(f"unknown sign election {method!r} (sum or count)")
    # copysign(1, x): +1 for x >= +0. A -0.0 total only occurs when every delta is zero there, where the
    # elected sign does not matter.
    return torch.copysign(torch.ones((), dtype=total.dtype, device=total.device), total, out=total)


def agrees(delta: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """True where ``delta`` is non-zero and has the elected ``sign`` (from ``elect_sign``)."""
    return delta * sign > 0


def disjoint_merge(
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float] | torch.Tensor,
    method: str = "sum",
    normalize: bool = True,
) -> torch.Tensor:
    """TIES disjoint merge of weighted deltas: elect a sign per entry, sum the entries that agree with it;
    with ``normalize`` divide each entry by the total weight of the deltas that agree there (1 where none do).

    deltas: M tensors of one shape, each already multiplied by its weight; weights: M floats.
    Returns the merged delta (same shape and dtype). Float arithmetic only: the agreeing entries are
    summed as magnitudes, sign * sum_i max(sign * d_i, 0), which is exactly the signed sum.
    """
    ws = [float(w) for w in weights]
    sign = elect_sign(deltas, method)
    magnitude_sum = torch.zeros_like(deltas[0])
    divisor = torch.zeros_like(deltas[0]) if normalize else None
    part = torch.empty_like(deltas[0])
    indicator = torch.empty_like(deltas[0]) if normalize else None
    for d, w in zip(deltas, ws):
        torch.mul(d, sign, out=part).clamp_min_(0)  # |d| where d agrees with the elected sign, else 0
        magnitude_sum += part
        if normalize:
            divisor.add_(torch.sign(part, out=indicator), alpha=w)
    mixed = magnitude_sum.mul_(sign)
    if normalize:
        divisor[divisor == 0] = 1
        mixed /= divisor
    return mixed
