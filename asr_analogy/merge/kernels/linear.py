"""Linear merge (model soups, Wortsman et al. 2022, arXiv 2203.05482): the weighted average of the models.

    merged = sum_i w_i theta_i ( / sum_i w_i when normalize, the default )

The models themselves are averaged, in the order listed; with ``base_model`` the base is one more input
(with the top-level ``weight``), as in mergekit. Arithmetic in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch

from asr_analogy.errors import ConfigError
from asr_analogy.merge.params import NORMALIZE, WEIGHT, Method
from asr_analogy.merge.stream import Streamer
from asr_analogy.ops.interpolate import work_dtype

if TYPE_CHECKING:
    from asr_analogy.merge.plan import TensorPlan


def merge_tensor(tp: TensorPlan, s: Streamer) -> Iterator[torch.Tensor]:
    """sum_i w_i theta_i (/ sum_i w_i), chunk by chunk, inputs in listed order."""
    name, inputs, cdtype = tp.name, tp.inputs, tp.compute_dtype
    n = inputs[0].reader.numel(name)
    wdtype = work_dtype(cdtype)
    weights = torch.tensor(tp.params["weight"], dtype=wdtype, device=s.device)
    normalize = tp.params["normalize"]
    total = weights.sum()
    if normalize and abs(float(total)) < 1e-8:
        raise ConfigError(f"{tp.source}: linear weights sum to zero for tensor {name!r}; set normalize: false")
    s.prefetch(inputs, name)
    for a, b in s.ranges(n):
        acc = s.buffer("acc", b - a, wdtype).zero_()
        for i, inp in enumerate(inputs):
            x = s.load(inp, name, a, b, cdtype, ("in", 0))
            acc.addcmul_(x if x.dtype == wdtype else x.to(wdtype), weights[i])
        if normalize:
            acc /= total
        out = acc if cdtype == wdtype else s.buffer("out", b - a, cdtype).copy_(acc)
        s.check(out, inputs, name, a, b)
        yield s.emit(out, tp.out_dtype)


LINEAR = Method("linear", "models", merge_tensor, (WEIGHT, NORMALIZE.with_default(True)),
                "Wortsman et al. 2022, Model soups, arXiv 2203.05482")
