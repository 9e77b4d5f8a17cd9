"""Interference between task vectors, measured before merging: cosine similarity, the sign-conflict rate
among the entries both vectors rank in their top-k by magnitude, and the overlap (Jaccard index) of those
top-k masks (the quantities TIES-Merging resolves, Yadav et al. 2023, arXiv 2306.01708).

Statistics are sums (``PairStats``), so they are computed tensor by tensor and added up over any group of
tensors (a layer, the encoder, the whole vector); the rates are derived from the sums at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from asr_analogy.ops.sparsify import magnitude_k, magnitude_keys, top_k_cuts


def top_mask(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask (x's shape, flattened) of the ``magnitude_k(numel, fraction)`` largest ``|x|`` (ties broken
    by position as in ``ops.sparsify``)."""
    flat = x.reshape(-1)
    (cut,) = top_k_cuts(lambda: [flat], [magnitude_k(flat.numel(), fraction)], flat.numel())
    return cut.mask(magnitude_keys(flat))[0]


@dataclass
class PairStats:
    """Sums over the entries of one or more tensors of two vectors a and b (float64 sums, integer counts)."""

    dot: float = 0.0  # sum a * b
    sq_a: float = 0.0  # sum a^2
    sq_b: float = 0.0  # sum b^2
    both: int = 0  # entries in both top-k masks
    conflicts: int = 0  # ... of which a and b have opposite signs
    either: int = 0  # entries in at least one top-k mask

    def __add__(self, other: "PairStats") -> "PairStats":
        return PairStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def cosine(self) -> float:
        """a.b / (|a| |b|); NaN when either vector is zero."""
        denom = math.sqrt(self.sq_a * self.sq_b)
        return self.dot / denom if denom > 0 else math.nan

    @property
    def sign_conflict(self) -> float:
        """Share of the entries in both top-k masks whose signs differ; NaN when the masks do not meet."""
        return self.conflicts / self.both if self.both else math.nan

    @property
    def jaccard(self) -> float:
        """|mask_a & mask_b| / |mask_a | mask_b|; NaN when both masks are empty."""
        return self.both / self.either if self.either else math.nan

    def summary(self) -> dict[str, float]:
        return {"cosine": self.cosine, "sign_conflict": self.sign_conflict, "jaccard": self.jaccard,
                "norm_a": math.sqrt(self.sq_a), "norm_b": math.sqrt(self.sq_b)}


def pair_stats(a: torch.Tensor, b: torch.Tensor, mask_a: torch.Tensor, mask_b: torch.Tensor) -> PairStats:
    """The sums of one tensor of two vectors, given their top-k masks (``top_mask``). a, b: same shape."""
    fa, fb = a.reshape(-1).to(torch.float64), b.reshape(-1).to(torch.float64)
    both = mask_a & mask_b
    opposite = (torch.sign(fa) * torch.sign(fb)) < 0
    return PairStats(
        dot=float(fa @ fb), sq_a=float(fa @ fa), sq_b=float(fb @ fb), both=int(both.sum()),
        conflicts=int((both & opposite).sum()), either=int((mask_a | mask_b).sum()),
    )
