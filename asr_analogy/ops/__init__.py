"""Pure functions on tensors and dict[str, Tensor], the maths of every merge: task vectors, sparsification
(magnitude, DARE, breadcrumbs), TIES sign consensus, the weighted combination of deltas, linear and SLERP
interpolation. No transformers, no config; every function names the paper it comes from."""

from asr_analogy.ops.combine import combine_deltas, generalized_task_arithmetic
from asr_analogy.ops.consensus import agrees, disjoint_merge, elect_sign
from asr_analogy.ops.interpolate import linear, slerp, slerp_coefficients
from asr_analogy.ops.sparsify import RankCut, breadcrumbs, dare, magnitude, top_k_cuts
from asr_analogy.ops.vectors import add, apply, negate, scale, task_vector

__all__ = [
    "RankCut",
    "add",
    "agrees",
    "apply",
    "breadcrumbs",
    "combine_deltas",
    "dare",
    "disjoint_merge",
    "elect_sign",
    "generalized_task_arithmetic",
    "linear",
    "magnitude",
    "negate",
    "scale",
    "slerp",
    "slerp_coefficients",
    "task_vector",
    "top_k_cuts",
]
