"""Generalized task arithmetic: one kernel, and the merge methods that are presets of it.

    merged = base + lambda * normalize?( sum_i w_i * sparsify(theta_i - base, density_i) [elected sign] )

| preset            | sparsify                   | sign consensus | normalize | rescale  | paper                          |
|-------------------|----------------------------|----------------|-----------|----------|--------------------------------|
| task_arithmetic   | -                          | -              | false     | -        | Ilharco et al. 2023, 2212.04089 |
| magnitude_prune   | magnitude top-k            | -              | false     | false    | Yadav et al. 2023 (trim only)  |
| ties              | magnitude top-k            | sum            | true      | false    | Yadav et al. 2023, 2306.01708  |
| dare_linear       | random (DARE)              | -              | false     | true     | Yu et al. 2024, 2311.03099     |
| dare_ties         | random (DARE)              | sum            | false     | true     | Yu et al. 2024, 2311.03099     |
| breadcrumbs       | drop top gamma + bottom    | -              | false     | false    | Davari & Belilovsky 2023, 2312.06795 |
| breadcrumbs_ties  | drop top gamma + bottom    | sum            | false     | false    | Davari & Belilovsky 2023       |

A preset declares only the parameters it reads: ``density`` and ``rescale`` where it sparsifies, ``gamma``
for breadcrumbs, ``consensus`` where it elects signs. Defaults, parameter names and arithmetic follow
mergekit 0.1.5 so its YAML files give its numbers (same operations in the same order: task arithmetic merges
come out bit-identical). Where this toolkit differs:

* ``weight`` defaults to 1 (mergekit requires it).
* Magnitude ties at the cut: when several entries share exactly the k-th largest magnitude and only some fit,
  the lower flat index is kept; mergekit's order there is whatever ``torch.argsort`` returns (unspecified for
  equal values). Only entries whose magnitude equals the cut can differ (25 of 141M in a 3-model TIES merge).
* ``rescale: true`` with DARE multiplies the survivors by 1/density as in the DARE paper (mergekit 0.1.5
  instead matches the l1 norm; ``rescale: l1`` selects that); with magnitude sparsification ``rescale: true``
  matches the l1 norm in both.
* DARE masks come from a ``torch.Generator`` seeded from (``seed``, tensor name, model position, chunk index),
  so a merge is reproducible on one device type; mergekit draws from the global RNG.
* Without ``dtype``, half-precision models are merged in float32 (mergekit computes in their own dtype); the
  output keeps the input dtype unless ``out_dtype`` is given.

Task-vector inputs (``vector:`` entries) are terms whose delta is read as it is. A merge of vectors only has no
base: the output is lambda * normalize?(sum_i ...) itself, a task vector; for task_arithmetic with
``normalize: true`` and weights 1 that is the mean (1/M) sum_i v_i, computed in the same order as the
in-memory ``ops.combine_deltas`` (bit-identical to it).

Methods that need whole-tensor statistics (magnitude top-k thresholds, l1/l2/linf rescaling) make one or two
extra streamed passes over the tensor first. Deltas that a mask or a sign election could hide a NaN/Inf in
are checked for finiteness chunk by chunk.
"""

from __future__ import annotations

import hashlib
import math
from functools import partial
from typing import TYPE_CHECKING, Iterator

import torch

from asr_analogy.merge.params import CHOICE, FLAG, NORMALIZE, WEIGHT, Method, Param
from asr_analogy.merge.stream import Streamer
from asr_analogy.ops.combine import combine_deltas, generalized_task_arithmetic
from asr_analogy.ops.sparsify import breadcrumbs_ks, dare_mask, magnitude_k, top_k_cuts_many

if TYPE_CHECKING:
    from asr_analogy.merge.plan import TensorPlan

RESCALE_NORMS = ("inverse", "l1", "l2", "linf")

LAMBDA = Param("lambda", 1.0, "scales the combined delta")
INT8_MASK = Param("int8_mask", False, "accepted for mergekit compatibility; no numerical effect", kind=FLAG)
DENSITY = Param("density", 1.0, "fraction of the delta's entries kept by sparsification (1 = all)",
                per_model=True, low=0.0, high=1.0, low_open=True)
GAMMA = Param("gamma", 0.01, "breadcrumbs: fraction of largest-magnitude entries dropped",
              per_model=True, low=0.0, high=1.0, high_open=True)
RESCALE = Param("rescale", False, "restore the delta's scale after sparsification: true (1/density for DARE, "
                "else the l1 norm), false, or the norm to match: inverse, l1, l2, linf", kind=CHOICE,
                choices=(True, False, "true", "false", *RESCALE_NORMS))
CONSENSUS = Param("consensus", "sum", "TIES sign election: 'sum' (total mass) or 'count' (frequency)",
                  kind=CHOICE, choices=("sum", "count"))


def preset(name: str, sparsify: str | None, consensus: str | None, *, normalize: bool = False,
           rescale: bool = False, paper: str) -> Method:
    """A generalized task-arithmetic method: ``sparsify`` None, "magnitude", "random" (DARE) or "outliers"
    (breadcrumbs); ``consensus`` None or the default sign election; the defaults of normalize and rescale."""
    params = [WEIGHT, LAMBDA, NORMALIZE.with_default(normalize), INT8_MASK]
    if sparsify is not None:
        params += [DENSITY, RESCALE.with_default(rescale)]
    if sparsify == "outliers":
        params.append(GAMMA)
    if consensus is not None:
        params.append(CONSENSUS.with_default(consensus))
    return Method(name, "deltas", partial(merge_tensor, sparsify=sparsify), tuple(params), paper)


def rescale_norm(sparsify: str | None, value) -> str | None:
    """The concrete rescaling for a ``rescale`` setting: None, "inverse" (1/density), "l1", "l2" or "linf"."""
    if value is None or value is False or value == "false" or sparsify is None:
        return None
    if value is True or value == "true":
        return "inverse" if sparsify == "random" else "l1"
    return value


def _seed_for(seed: int, name: str, term: int, chunk: int) -> int:
    digest = hashlib.blake2b(f"{seed}\0{name}\0{term}\0{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class _Sparsifier:
    """Keep-mask of one term for one tensor, computed chunk by chunk in flat order."""

    def __init__(self, kind: str, density: float, cuts=None, seed: int = 0, name: str = "", term: int = 0):
        self.kind, self.density, self.cuts = kind, density, cuts
        self.seed, self.name, self.term = seed, name, term
        self.reset()

    def reset(self) -> None:
        self.seen = [0] * len(self.cuts or [])
        self.chunk_index = 0

    def apply(self, delta: torch.Tensor) -> torch.Tensor:
        """The next chunk of the delta (1-D, flat order) with dropped entries zeroed (a new tensor)."""
        i = self.chunk_index
        self.chunk_index += 1
        if self.kind == "random":
            gen = torch.Generator(device=delta.device)
            gen.manual_seed(_seed_for(self.seed, self.name, self.term, i))
            return delta * dare_mask(delta.numel(), self.density, gen, delta.device).to(delta.dtype)
        kept, self.seen[0] = self.cuts[0].keep(delta, self.seen[0])
        if self.kind == "outliers":  # drop the top ``gamma`` too: outer cut minus top cut
            top, self.seen[1] = self.cuts[1].keep(delta, self.seen[1])
            kept -= top
        return kept


def _delta(s: Streamer, tp: TensorPlan, i: int, a: int, b: int, base: torch.Tensor | None = None) -> torch.Tensor:
    """plus - minus of term ``i`` for chunk a:b, written into the pooled buffer ("delta", i); ``base``: the
    anchor's chunk, already loaded."""
    term, dtype = tp.terms[i], tp.compute_dtype
    out = s.buffer(("delta", i), b - a, dtype)
    plus = s.load(term.plus, tp.name, a, b, dtype, ("plus", i))
    if term.minus is None:
        return out.copy_(plus)
    if base is not None and term.minus is tp.anchor:
        minus = base
    else:
        minus = s.load(term.minus, tp.name, a, b, dtype, ("minus", i))
    return torch.sub(plus, minus, out=out)


def _anchor_chunk(s: Streamer, tp: TensorPlan, a: int, b: int) -> torch.Tensor | None:
    """The anchor's (base's) chunk a:b, or None when the output is the combined delta alone."""
    return None if tp.delta_only else s.load(tp.anchor, tp.name, a, b, tp.compute_dtype, "base")


def merge_tensor(tp: TensorPlan, s: Streamer, *, sparsify: str | None) -> Iterator[torch.Tensor]:
    """anchor + lambda * normalize?(sum_i w_i sparsify(delta_i)) with optional sign consensus, chunk by chunk
    (without ``anchor +`` when ``tp.delta_only``: a merge of task vectors into one)."""
    p, name, anchor, terms, cdtype = tp.params, tp.name, tp.anchor, tp.terms, tp.compute_dtype
    n = anchor.reader.numel(name)
    weights, lam, normalize = p["weight"], p["lambda"], p["normalize"]
    consensus = p.get("consensus")
    rescale = rescale_norm(sparsify, p.get("rescale"))
    s.prefetch(tp.inputs, name)
    ranges = s.ranges(n)

    densities = p.get("density") or [1.0] * len(terms)
    sparsifiers: list[_Sparsifier | None] = [None] * len(terms)
    factors: list[float] = [1.0] * len(terms)
    ranked = []  # terms needing magnitude cuts, found together in one streamed pass
    for i in range(len(terms)):
        if sparsify is None or densities[i] >= 1:
            continue
        if sparsify == "random":
            sparsifiers[i] = _Sparsifier("random", max(densities[i], 0.0), seed=tp.seed, name=name, term=i)
        else:
            ranked.append(i)
    if ranked:
        ks = []
        for i in ranked:
            if sparsify == "magnitude":
                ks.append([magnitude_k(n, densities[i])])
            else:
                ks.append(list(breadcrumbs_ks(n, densities[i], p["gamma"][i])))
        for i, cuts in zip(ranked, _cuts(s, tp, ranked, ranges, ks)):
            sparsifiers[i] = _Sparsifier(sparsify, densities[i], cuts)
    for i in range(len(terms)):
        sp = sparsifiers[i]
        if sp is not None and rescale == "inverse":
            factors[i] = 1.0 / densities[i] if densities[i] > 0 else 0.0
        elif sp is not None and rescale in ("l1", "l2", "linf"):
            factors[i] = _norm_ratio(s, tp, i, ranges, sp, rescale)
            sp.reset()

    # Deltas that are masked or sign-elected could hide a NaN/Inf from the output check: test them.
    check_deltas = consensus is not None or any(sp is not None and sp.kind == "random" for sp in sparsifiers)
    for a, b in ranges:
        base = _anchor_chunk(s, tp, a, b)
        deltas = []
        for i in range(len(terms)):
            d = _delta(s, tp, i, a, b, base)
            if check_deltas and not s.is_finite(d):
                s.find_nonfinite(tp.inputs, name, a, b)
            sp = sparsifiers[i]
            if sp is not None:
                d = sp.apply(d)
            if factors[i] != 1.0:
                d.mul_(factors[i])
            deltas.append(d)
        direct = base is not None and cdtype == tp.out_dtype and s.device.type == "cpu"
        if base is None:  # the merged delta is the output (in a pooled buffer: emit copies it)
            out = combine_deltas(deltas, weights, consensus=consensus, normalize=normalize, lam=lam, inplace=True)
        elif deltas:
            target = s.ring(b - a, cdtype) if direct else s.buffer("out", b - a, cdtype)
            out = generalized_task_arithmetic(
                base, deltas, weights, consensus=consensus, normalize=normalize, lam=lam, inplace=True, out=target
            )
        else:
            out = base
        s.check(out, tp.inputs, name, a, b)
        stable = direct and bool(deltas)  # the result is in a ring buffer
        yield s.emit(out, tp.out_dtype, stable=stable)


def _cuts(s: Streamer, tp: TensorPlan, ranked, ranges, ks):
    """Magnitude cuts of the ``ranked`` terms' deltas over the whole tensor (two streamed passes; the
    anchor chunk is read once per position for all terms)."""

    def chunks():
        for a, b in ranges:
            base = _anchor_chunk(s, tp, a, b)
            yield [_delta(s, tp, i, a, b, base) for i in ranked]

    try:
        return top_k_cuts_many(chunks, ks, ranges[-1][1])
    except ValueError:  # non-finite magnitudes
        for a, b in ranges:
            s.find_nonfinite(tp.inputs, tp.name, a, b)
        raise


def _norm_ratio(s: Streamer, tp: TensorPlan, i: int, ranges, sp: _Sparsifier, norm: str) -> float:
    """||delta|| / ||masked delta|| for the l1/l2/linf rescale (1 when either is below 1e-7)."""
    before = after = 0.0
    for a, b in ranges:
        d = _delta(s, tp, i, a, b)
        kept = sp.apply(d).double()
        d = d.double()
        if norm == "l1":
            before += float(d.abs().sum())
            after += float(kept.abs().sum())
        elif norm == "l2":
            before += float(d.square().sum())
            after += float(kept.square().sum())
        elif d.numel():
            before = max(before, float(d.abs().max()))
            after = max(after, float(kept.abs().max()))
    if not math.isfinite(before):  # a NaN/Inf in the delta: name the input that holds it
        for a, b in ranges:
            s.find_nonfinite(tp.inputs, tp.name, a, b)
    if norm == "l2":
        before, after = before**0.5, after**0.5
    if before < 1e-7 or after < 1e-7:
        return 1.0
    return before / after


METHODS = (
    preset("task_arithmetic", None, None,
           paper="Ilharco et al. 2023, Editing Models with Task Arithmetic, arXiv 2212.04089"),
    preset("magnitude_prune", "magnitude", None, paper="Yadav et al. 2023 (TIES trim step), arXiv 2306.01708"),
    preset("ties", "magnitude", "sum", normalize=True, paper="Yadav et al. 2023, TIES-Merging, arXiv 2306.01708"),
    preset("dare_linear", "random", None, rescale=True, paper="Yu et al. 2024, DARE, arXiv 2311.03099"),
    preset("dare_ties", "random", "sum", rescale=True, paper="Yu et al. 2024, DARE + TIES, arXiv 2311.03099"),
    preset("breadcrumbs", "outliers", None, paper="Davari & Belilovsky 2023, Model Breadcrumbs, arXiv 2312.06795"),
    preset("breadcrumbs_ties", "outliers", "sum", paper="Davari & Belilovsky 2023 + TIES, arXiv 2312.06795"),
)
