"""TIES sign election and disjoint merge; the generalized task-arithmetic step (hand-computed values)."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.ops import combine_deltas, disjoint_merge, elect_sign, generalized_task_arithmetic

T = torch.tensor


def test_sum_and_count_elections_differ_where_mass_and_votes_disagree():
    # entry 0: +3, -1, -1 -> mass +1 but two of three vote negative; entry 1: a zero total counts as positive
    deltas = [T([3.0, 1.0]), T([-1.0, -1.0]), T([-1.0, 0.0])]
    assert_close(elect_sign(deltas, "sum"), T([1.0, 1.0]))
    assert_close(elect_sign(deltas, "count"), T([-1.0, 1.0]))
    with pytest.raises(ValueError):
        elect_sign(deltas, "median")


def test_disjoint_merge_averages_only_agreeing_entries():
    deltas = [T([3.0, -2.0, 0.0, 1.0]), T([-1.0, -4.0, 0.0, -1.0])]
    # signs by mass: [+, -, +, + (tie)]; agreeing: e0 {3}, e1 {-2, -4}, e2 {}, e3 {1}
    assert_close(disjoint_merge(deltas, [1.0, 1.0], "sum", normalize=True), T([3.0, -3.0, 0.0, 1.0]))
    assert_close(disjoint_merge(deltas, [1.0, 1.0], "sum", normalize=False), T([3.0, -6.0, 0.0, 1.0]))


def test_combine_deltas_weighted_sum_normalize_and_lambda():
    deltas = [T([1.0, 0.0, -2.0]), T([0.0, 1.0, 1.0])]
    # 1 * d1 + 0.5 * d2 = [1, 0.5, -1.5]
    assert_close(combine_deltas(deltas, [1.0, 0.5]), T([1.0, 0.5, -1.5]))
    # normalized by 1.5, then lambda 3: [2, 1, -3]
    assert_close(combine_deltas(deltas, [1.0, 0.5], normalize=True, lam=3.0), T([2.0, 1.0, -3.0]))
    # weights summing to ~0 are not divided by (mergekit's 1e-8 guard): 1*d1 - 1*d2
    assert_close(combine_deltas(deltas, [1.0, -1.0], normalize=True), T([1.0, -1.0, -3.0]))


def test_combine_with_consensus_divides_by_the_agreeing_weights():
    deltas = [T([1.0, -2.0]), T([-1.0, -1.0])]
    # weighted: [1, -2] and [-0.5, -0.5]; mass [0.5, -2.5] -> signs [+, -]
    # e0: only d1 agrees -> 1 / 1; e1: both agree -> -2.5 / 1.5
    assert_close(combine_deltas(deltas, [1.0, 0.5], consensus="sum", normalize=True), T([1.0, -2.5 / 1.5]))


def test_inplace_combine_equals_the_allocating_one():
    gen = torch.Generator().manual_seed(0)
    deltas = [torch.randn(1000, generator=gen) for _ in range(3)]
    for consensus in (None, "sum", "count"):
        ref = combine_deltas(deltas, [1.0, -0.5, 0.7], consensus=consensus, normalize=True, lam=0.8)
        scratch = [d.clone() for d in deltas]
        got = combine_deltas(scratch, [1.0, -0.5, 0.7], consensus=consensus, normalize=True, lam=0.8, inplace=True)
        assert torch.equal(got, ref)


def test_generalized_task_arithmetic_adds_to_the_anchor_in_its_dtype():
    base = T([1.0, 2.0], dtype=torch.float64)
    out = generalized_task_arithmetic(base, [T([0.5, -0.5], dtype=torch.float64)], [2.0], lam=0.5)
    assert out.dtype == torch.float64
    assert_close(out, T([1.5, 1.5], dtype=torch.float64))
