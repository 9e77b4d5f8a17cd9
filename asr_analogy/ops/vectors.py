"""Task vectors: tau = theta_finetuned - theta_base, added back with a scale.

Task Arithmetic: Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023 (arXiv 2212.04089).
Adding tau teaches the task, adding -tau (negation) unlearns it, and sums of several taus combine skills.

Every function accepts either single tensors or ``{name: tensor}`` mappings (a state dict). Mappings are
handled name by name; tensors that are not floating point (integer buffers, masks) are not part of a task
vector and are carried over from the base unchanged.
"""

from __future__ import annotations

from typing import Mapping, TypeVar

import torch

from asr_analogy.errors import MergeError

T = TypeVar("T", torch.Tensor, Mapping)


def _check_pair(name: str, a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise MergeError(f"tensor {name!r}: shape {list(a.shape)} in {what[0]} but {list(b.shape)} in {what[1]}")


def task_vector(finetuned: T, base: T) -> T:
    """tau = finetuned - base (Ilharco et al. 2023).

    Tensors: same shape, any floating dtype; the result has ``finetuned``'s dtype. Mappings: must hold the
    same names; non-floating entries are left out of the vector.
    """
    if isinstance(finetuned, torch.Tensor):
        _check_pair("<tensor>", finetuned, base, ("finetuned", "base"))
        return finetuned - base.to(finetuned.dtype)
    missing = sorted(set(base) ^ set(finetuned))
    if missing:
        side = "base" if missing[0] not in base else "finetuned"
        raise MergeError(f"tensor {missing[0]!r} is missing from the {side} model ({len(missing)} names differ)")
    out = {}
    for name, ft in finetuned.items():
        if not ft.is_floating_point():
            continue
        _check_pair(name, ft, base[name], ("finetuned", "base"))
        out[name] = ft - base[name].to(ft.dtype)
    return out


def apply(base: T, vector: T, scale: float = 1.0) -> T:
    """theta = base + scale * tau (Ilharco et al. 2023); ``scale=-1`` negates (unlearns) the vector.

    Computed in float32 at least (float64 when either side is float64), returned in ``base``'s dtype.
    Mappings: names absent from ``vector`` are copied from ``base``; a vector name absent from ``base`` is an
    error.
    """
    if isinstance(base, torch.Tensor):
        _check_pair("<tensor>", base, vector, ("base", "vector"))
        work = torch.promote_types(torch.promote_types(base.dtype, vector.dtype), torch.float32)
        return (base.to(work) + scale * vector.to(work)).to(base.dtype)
    extra = sorted(set(vector) - set(base))
    if extra:
        raise MergeError(f"vector tensor {extra[0]!r} does not exist in the base model ({len(extra)} such names)")
    out = {}
    for name, b in base.items():
        out[name] = apply(b, vector[name], scale) if name in vector and b.is_floating_point() else b
    return out


def scale(vector: T, factor: float) -> T:
    """factor * tau."""
    if isinstance(vector, torch.Tensor):
        return vector * factor
    return {name: v * factor for name, v in vector.items()}


def negate(vector: T) -> T:
    """-tau: applying it removes what tau added (Ilharco et al. 2023, "forgetting via negation")."""
    return scale(vector, -1.0)


def add(a: T, b: T) -> T:
    """tau_a + tau_b (names must match)."""
    if isinstance(a, torch.Tensor):
        return a + b
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        raise MergeError(f"task vectors differ in tensor names, e.g. {diff[0]!r} ({len(diff)} names)")
    return {name: a[name] + b[name] for name in a}
