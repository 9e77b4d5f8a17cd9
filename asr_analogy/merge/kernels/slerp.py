"""SLERP (Shoemake 1985): spherical interpolation from the base (t = 0) to one other model (t = 1).

    merged = c0(t, angle) * theta_base + c1(t, angle) * theta_other

over each flattened tensor, the angle taken between the two whole tensors (a first streamed pass sums their
squares and dot product); nearly parallel tensors are interpolated linearly (``ops.interpolate``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch

from asr_analogy.merge.params import Method, Param
from asr_analogy.merge.stream import Streamer
from asr_analogy.ops.interpolate import slerp_coefficients, slerp_cosine, work_dtype

if TYPE_CHECKING:
    from asr_analogy.merge.plan import TensorPlan

T = Param("t", None, "interpolation factor: 0 = the base, 1 = the other model", low=0.0, high=1.0)


def merge_tensor(tp: TensorPlan, s: Streamer) -> Iterator[torch.Tensor]:
    """Spherical interpolation from base (t=0) to other (t=1) over the flattened tensor."""
    name, cdtype = tp.name, tp.compute_dtype
    base, other = tp.inputs
    n = base.reader.numel(name)
    wdtype = work_dtype(cdtype)
    sq0 = sq1 = dot = 0.0
    ranges = s.ranges(n)
    for a, b in ranges:
        x = s.load(base, name, a, b, cdtype, "x").to(wdtype)
        y = s.load(other, name, a, b, cdtype, "y").to(wdtype)
        sq0 += float(torch.dot(x, x))
        sq1 += float(torch.dot(y, y))
        dot += float(torch.dot(x, y))
    if not all(map(lambda v: v == v and abs(v) != float("inf"), (sq0, sq1, dot))):
        for a, b in ranges:
            s.find_nonfinite(tp.inputs, name, a, b)
    c0, c1 = slerp_coefficients(tp.params["t"], slerp_cosine(sq0, sq1, dot))
    for a, b in ranges:
        x = s.load(base, name, a, b, cdtype, "x").to(wdtype)
        y = s.load(other, name, a, b, cdtype, "y").to(wdtype)
        out = (c0 * x + c1 * y).to(cdtype)
        s.check(out, tp.inputs, name, a, b)
        yield s.emit(out, tp.out_dtype)


SLERP = Method("slerp", "pair", merge_tensor, (T,), "Shoemake 1985, Animating rotation with quaternion curves")
