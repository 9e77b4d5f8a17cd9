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
    """Elected sign per entry as a boolean tensor: True where positive wins (a tie counts as positive).

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
    return total >= 0


def agrees(delta: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """True where ``delta`` is non-zero and has the elected sign (``positive`` from ``elect_sign``)."""
    return torch.where(positive, delta > 0, delta < 0)


def disjoint_merge(
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float] | torch.Tensor,
    method: str = "sum",
    normalize: bool = True,
) -> torch.Tensor:
    """TIES disjoint merge of weighted deltas: elect a sign per entry, sum the entries that agree with it;
    with ``normalize`` divide each entry by the total weight of the deltas that agree there (1 where none do).

    deltas: M tensors of one shape, each already multiplied by its weight; weights: M floats.
    Returns the merged delta (same shape and dtype).
    """
    w = torch.as_tensor(weights, dtype=deltas[0].dtype, device=deltas[0].device)
    positive = elect_sign(deltas, method)
    mixed = torch.zeros_like(deltas[0])
    divisor = torch.zeros_like(deltas[0]) if normalize else None
    for i, d in enumerate(deltas):
        ok = agrees(d, positive)
        mixed += torch.where(ok, d, 0)
        if normalize:
            divisor += ok * w[i]
    if normalize:
        divisor[divisor == 0] = 1
        mixed /= divisor
    return mixed
