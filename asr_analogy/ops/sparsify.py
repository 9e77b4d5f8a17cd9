"""Sparsification of task vectors: keep a ``density`` fraction of the entries of a delta, zero the rest.

* ``magnitude`` keeps the largest ``|x|`` (TIES trimming step: Yadav et al., "TIES-Merging: Resolving
  Interference When Merging Models", NeurIPS 2023, arXiv 2306.01708).
* ``dare`` drops entries at random with probability p = 1 - density and rescales survivors by 1/(1-p)
  (Yu et al., "Language Models are Super Mario: Absorbing Abilities from Homologous Models as a Free Lunch",
  ICML 2024, arXiv 2311.03099).
* ``breadcrumbs`` drops the largest ``gamma`` fraction (outliers) and then the smallest entries so that
  ``density`` remains (Davari & Belilovsky, "Model Breadcrumbs: Scaling Multi-Task Model Merging with Sparse
  Masks", arXiv 2312.06795).

Conventions (shared with mergekit): ``density >= 1`` returns the input unchanged; magnitude keeps
``k = max(1, int(density * numel))`` entries; breadcrumbs keeps ``int(density * numel)`` entries after
dropping ``int(gamma * numel)`` at the top (fewer when density + gamma > 1). Magnitudes are compared in
float32. Ties in magnitude are broken by position: at equal ``|x|`` the lower flat index ranks higher.

Selection works on a threshold (``RankCut``) found by a two-pass radix select over the float32 bit patterns
of ``|x|`` (O(numel), exact), so the same cut can be found over a tensor streamed in chunks and then applied
chunk by chunk; the whole-tensor functions below are the one-chunk case of the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

_DIGITS = 1 << 16
_SMALL = 1 << 16  # tensors up to this size are cut by sorting their keys
_NONFINITE_KEY = 0x7F800000  # key of +Inf; NaN keys are larger


def magnitude_keys(x: torch.Tensor) -> torch.Tensor:
    """int32 keys ordered like ``|x|`` (the bit pattern of ``|x|`` as float32; finite inputs only)."""
    return x.abs().to(torch.float32).view(torch.int32)


@dataclass(frozen=True)
class RankCut:
    """The ``k`` largest magnitudes of a tensor, as a threshold on ``magnitude_keys`` usable chunk by chunk.

    Kept: every entry whose key is ``> key``, plus the first ``take_equal`` entries (in flat order) whose key
    is exactly ``edge``. ``take_equal`` is non-zero only when the k-th largest magnitude is shared by entries
    on both sides of the cut.
    """

    key: int  # keep all entries with key > self.key
    edge: int = -1  # ... and the first ``take_equal`` entries whose key == edge (edge <= key)
    take_equal: int = 0

    @staticmethod
    def everything() -> "RankCut":
        return RankCut(key=-1)

    @staticmethod
    def nothing() -> "RankCut":
        return RankCut(key=2**31 - 1)

    @property
    def threshold(self) -> float:
        """``|x| > threshold`` is kept when ``take_equal == 0`` (float32 value of ``key``)."""
        return float(torch.tensor(max(self.key, 0), dtype=torch.int32).view(torch.float32)) if self.key >= 0 else -1.0

    def keep(self, x: torch.Tensor, equal_seen: int = 0) -> tuple[torch.Tensor, int]:
        """``x`` (a 1-D chunk) with the entries outside the cut set to zero, as a new tensor; returns
        ``(kept, equal_seen after this chunk)``. float32 without edge ties takes a fast path (hardshrink)."""
        if self.key < 0:
            return x.clone(), equal_seen
        if self.key >= 2**31 - 1:
            return torch.zeros_like(x), equal_seen
        if self.take_equal <= 0 and x.dtype == torch.float32:
            return torch.nn.functional.hardshrink(x, self.threshold), equal_seen
        keep, seen = self.mask(magnitude_keys(x), equal_seen)
        return x * keep.to(x.dtype), seen

    def mask(self, keys: torch.Tensor, equal_seen: int = 0) -> tuple[torch.Tensor, int]:
        """Boolean keep-mask for a chunk of keys; ``equal_seen`` counts edge-valued entries in earlier chunks.
        Returns ``(mask, equal_seen after this chunk)``."""
        keep = keys > self.key
        if self.take_equal <= 0 or equal_seen >= self.take_equal:
            return keep, equal_seen
        eq = keys == self.edge
        rank = torch.cumsum(eq, 0, dtype=torch.int64) + equal_seen
        keep |= eq & (rank <= self.take_equal)
        return keep, equal_seen + int(eq.sum())


def top_k_cuts(chunks: Callable[[], Iterable[torch.Tensor]], ks: Sequence[int], numel: int) -> list[RankCut]:
    """Exact cuts for the ``k`` largest magnitudes, for each ``k`` in ``ks``, in two passes over ``chunks()``.

    ``chunks`` returns a fresh iterable over the 1-D chunks of the tensor in flat order (called at most
    twice; a chunk may be overwritten once the next is requested). Raises ``ValueError`` on NaN/Inf.
    Pass 1 histograms the top 16 bits of every key; pass 2 histograms the low 16 bits inside the bucket that
    holds the k-th largest. Cost: O(numel) per pass; memory: two 65536-bin histograms per cut.
    """
    return top_k_cuts_many(lambda: ([c] for c in chunks()), [ks], numel)[0]


def top_k_cuts_many(
    chunks: Callable[[], Iterable[Sequence[torch.Tensor]]], ks: Sequence[Sequence[int]], numel: int
) -> list[list[RankCut]]:
    """``top_k_cuts`` for M tensors of one size streamed together: ``chunks()`` yields, per chunk position,
    the M aligned chunks; ``ks[m]`` are the k's wanted for tensor m. One pass serves all M tensors (inputs
    shared between them, such as a base model, are read once)."""
    m_count = len(ks)
    cuts: list[list[RankCut | None]] = [[None] * len(k) for k in ks]
    todo: list[list[int]] = [[] for _ in ks]
    for m, km in enumerate(ks):
        for i, k in enumerate(km):
            if k >= numel:
                cuts[m][i] = RankCut.everything()
            elif k <= 0:
                cuts[m][i] = RankCut.nothing()
            else:
                todo[m].append(i)
    if not any(todo):
        return cuts  # type: ignore[return-value]
    if numel <= _SMALL:
        parts: list[list[torch.Tensor]] = [[] for _ in ks]
        for group in chunks():
            for m in range(m_count):
                parts[m].append(magnitude_keys(group[m]).cpu())
        for m in range(m_count):
            if not todo[m]:
                continue
            keys = torch.cat(parts[m])
            if int(keys.max()) >= _NONFINITE_KEY:
                raise ValueError("magnitude selection needs finite values (found NaN or Inf)")
            ordered = torch.sort(keys, descending=True).values
            for i in todo[m]:
                edge = int(ordered[ks[m][i] - 1])
                greater = int((keys > edge).sum())
                equal = int((keys == edge).sum())
                take = ks[m][i] - greater
                cuts[m][i] = RankCut(key=edge - 1) if take == equal else RankCut(key=edge, edge=edge, take_equal=take)
        return cuts  # type: ignore[return-value]

    hist_hi = [np.zeros(_DIGITS, dtype=np.int64) for _ in ks]
    for group in chunks():
        for m in range(m_count):
            if todo[m]:
                hist_hi[m] += _bincount(magnitude_keys(group[m]) >> 16)
    plan: dict[tuple[int, int], tuple[int, int]] = {}  # (m, i) -> (hi digit, still needed inside the bucket)
    for m in range(m_count):
        if not todo[m]:
            continue
        if hist_hi[m][_NONFINITE_KEY >> 16 :].any():  # exponent all ones: Inf or NaN
            raise ValueError("magnitude selection needs finite values (found NaN or Inf)")
        above_hi = _counts_above(hist_hi[m])
        for i in todo[m]:
            d = _digit_for(above_hi, hist_hi[m], ks[m][i])
            need = ks[m][i] - int(above_hi[d])
            if need == int(hist_hi[m][d]):
                cuts[m][i] = RankCut(key=(d << 16) - 1)  # the whole bucket and everything above it
            else:
                plan[(m, i)] = (d, need)
    if not plan:
        return cuts  # type: ignore[return-value]
    buckets = {m: sorted({d for (mm, _), (d, _) in plan.items() if mm == m}) for m in range(m_count)}
    hist_lo = {(m, d): np.zeros(_DIGITS, dtype=np.int64) for m in buckets for d in buckets[m]}
    for group in chunks():
        for m in range(m_count):
            if not buckets[m]:
                continue
            keys = magnitude_keys(group[m])
            for d in buckets[m]:
                # low digit + 1 inside the bucket, 0 below it, 65537 above it: no boolean selection needed
                pos = (keys - ((d << 16) - 1)).clamp_(0, _DIGITS + 1)
                hist_lo[(m, d)] += torch.bincount(pos, minlength=_DIGITS + 2).cpu().numpy()[1 : _DIGITS + 1]
    for (m, i), (d, need) in plan.items():
        hist = hist_lo[(m, d)]
        above = _counts_above(hist)
        d2 = _digit_for(above, hist, need)
        take = need - int(above[d2])
        edge = (d << 16) | d2
        if take == int(hist[d2]):
            cuts[m][i] = RankCut(key=edge - 1)
        else:
            cuts[m][i] = RankCut(key=edge, edge=edge, take_equal=take)
    return cuts  # type: ignore[return-value]


def _bincount(digits: torch.Tensor) -> np.ndarray:
    """Counts of 16-bit digits (int32 tensor on any device) as a numpy array of 65536 bins."""
    return torch.bincount(digits, minlength=_DIGITS).cpu().numpy()


def _counts_above(hist: np.ndarray) -> np.ndarray:
    """above[d] = number of entries in digits > d."""
    return np.cumsum(hist[::-1])[::-1] - hist


def _digit_for(above: np.ndarray, hist: np.ndarray, k: int) -> int:
    """The digit d with above[d] < k <= above[d] + hist[d] (k >= 1)."""
    ok = np.nonzero((above < k) & (above + hist >= k))[0]
    return int(ok[-1]) if len(ok) else 0


def magnitude_k(numel: int, density: float) -> int:
    """Entries kept by magnitude pruning: ``max(1, int(density * numel))`` (0 for density <= 0)."""
    if density <= 0 or numel == 0:
        return 0
    return min(numel, max(1, int(density * numel)))


def breadcrumbs_ks(numel: int, density: float, gamma: float) -> tuple[int, int]:
    """``(k_outer, k_top)``: breadcrumbs keeps the top ``k_outer`` magnitudes minus the top ``k_top``.

    ``int(density * n)`` are kept; ``int(gamma * n)`` largest are dropped unless that would leave fewer than
    the target, in which case fewer are dropped at the top and none at the bottom.
    """
    target = max(0, int(density * numel))
    n_top = max(0, int(gamma * numel))
    n_bottom = max(0, numel - target - n_top)
    k_outer = numel - n_bottom
    return k_outer, max(0, k_outer - target)


def _rescale(x: torch.Tensor, masked: torch.Tensor, norm: str | None, eps: float = 1e-7) -> torch.Tensor:
    """Scale ``masked`` so its l1/l2/linf norm matches ``x`` (no change when either norm is below eps)."""
    if norm is None:
        return masked
    if norm == "l1":
        before, after = x.abs().sum(), masked.abs().sum()
    elif norm == "l2":
        before, after = x.norm(), masked.norm()
    elif norm == "linf":
        before, after = x.abs().max(), masked.abs().max()
    else:
        raise ValueError(f"unknown rescale norm {norm!r} (l1, l2, linf)")
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def magnitude(x: torch.Tensor, density: float, rescale: str | None = None) -> torch.Tensor:
    """Keep the ``max(1, int(density * numel))`` largest-magnitude entries of ``x``, zero the rest
    (TIES trim step, Yadav et al. 2023). ``rescale="l1"`` (or l2/linf) restores the norm of ``x``.

    x: any shape, floating; returns the same shape and dtype.
    """
    if density >= 1:
        return x
    flat = x.reshape(-1)
    (cut,) = top_k_cuts(lambda: [flat], [magnitude_k(flat.numel(), density)], flat.numel())
    masked = cut.keep(flat)[0].reshape(x.shape)
    return _rescale(x, masked, rescale)


def breadcrumbs(x: torch.Tensor, density: float, gamma: float = 0.01, rescale: str | None = None) -> torch.Tensor:
    """Model Breadcrumbs (Davari & Belilovsky 2023): drop the ``gamma`` fraction of largest-magnitude entries
    and the smallest ones so that ``int(density * numel)`` remain.

    x: any shape, floating; returns the same shape and dtype.
    """
    if density >= 1:
        return x
    flat = x.reshape(-1)
    k_outer, k_top = breadcrumbs_ks(flat.numel(), density, gamma)
    outer, top = top_k_cuts(lambda: [flat], [k_outer, k_top], flat.numel())
    masked = (outer.keep(flat)[0] - top.keep(flat)[0]).reshape(x.shape)
    return _rescale(x, masked, rescale)


def dare_mask(numel: int, density: float, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """float32 keep-mask of 1.0/0.0, each entry kept independently with probability ``density`` (1-D)."""
    return torch.rand(numel, generator=generator, device=device).lt_(density)


def dare(
    x: torch.Tensor,
    density: float,
    generator: torch.Generator | None = None,
    rescale: bool | str | None = True,
) -> torch.Tensor:
    """DARE (Yu et al. 2024): drop each entry with probability p = 1 - density; with ``rescale=True`` the
    survivors are multiplied by 1/(1-p) so the expectation of every entry is unchanged. ``rescale="l1"``
    (l2/linf) instead restores the norm of ``x`` (mergekit 0.1.5's choice). Seed ``generator`` for
    reproducible masks.

    x: any shape, floating; returns the same shape and dtype.
    """
    if density >= 1:
        return x
    if density <= 0:
        return torch.zeros_like(x)
    keep = dare_mask(x.numel(), density, generator, x.device).reshape(x.shape)
    masked = x * keep.to(x.dtype)
    if rescale is True or rescale == "inverse":
        return masked / density
    return _rescale(x, masked, rescale or None)
