"""Edges of the weighted combination and TIES consensus, each with hand values: float64 weights kept exact,
consensus without normalization, the 1e-8 guard at its boundary, the defaults of ``elect_sign``,
``disjoint_merge`` and ``generalized_task_arithmetic``, its arguments passed through, ``agrees``, and the
error texts."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.ops import agrees, combine_deltas, disjoint_merge, elect_sign, generalized_task_arithmetic

T = torch.tensor
F64 = torch.float64

# entry 0: +3, -1, -1 -> mass +1 (sum elects +) but two of three vote - (count elects -)
SPLIT = [T([3.0]), T([-1.0]), T([-1.0])]


def test_float64_deltas_use_float64_weights():
    # 0.1 is not a float32: in float64 the product is exactly 2 * 0.1
    out = combine_deltas([T([2.0], dtype=F64)], [0.1])
    assert out.dtype == F64 and out.item() == 2 * 0.1


def test_consensus_without_normalize_sums_the_agreeing_entries():
    deltas = [T([1.0, -2.0]), T([-1.0, -1.0])]
    # weighted [1, -2] and [-0.5, -0.5]; signs [+, -]: e0 keeps 1, e1 keeps -2 - 0.5 (not divided by 1.5)
    assert_close(combine_deltas(deltas, [1.0, 0.5], consensus="sum"), T([1.0, -2.5]))


def test_normalize_divides_by_weights_at_the_guard_and_below_one():
    # a weight sum of exactly 1e-8 (float64) is divided by: 2e-8 / 1e-8
    assert combine_deltas([T([2.0], dtype=F64)], [1e-8], normalize=True).item() == pytest.approx(2.0, rel=1e-12)
    # weights 0.25 + 0.25: the mean of 2 and 4
    assert_close(combine_deltas([T([2.0]), T([4.0])], [0.25, 0.25], normalize=True), T([3.0]))


def test_empty_deltas_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^combine_deltas needs at least one delta$"):
        combine_deltas([], [])


def test_elect_sign_defaults_to_the_mass_and_names_unknown_methods():
    assert elect_sign(SPLIT).tolist() == [1.0]
    # every delta counts: 1 - 2 < 0
    elected = elect_sign([T([1.0], dtype=F64), T([-2.0], dtype=F64)])
    assert elected.dtype == F64 and elected.tolist() == [-1.0]
    with pytest.raises(ValueError, match=r"^unknown sign election 'median' \(sum or count\)$"):
        elect_sign(SPLIT, "median")


def test_agrees_is_true_where_the_delta_is_non_zero_with_the_sign():
    got = agrees(T([2.0, -1.0, 0.0, 0.5, -0.5]), T([1.0, 1.0, 1.0, 1.0, -1.0]))
    assert got.tolist() == [True, False, False, True, True]


def test_disjoint_merge_defaults_and_count_election():
    # default: elected by mass (+), normalized: only 3 agrees -> 3 / 1
    assert disjoint_merge(SPLIT, [1.0, 1.0, 1.0]).tolist() == [3.0]
    # by count (-): -1 and -1 agree -> -2 / 2
    assert disjoint_merge(SPLIT, [1.0, 1.0, 1.0], "count").tolist() == [-1.0]
    # two agreeing deltas, default normalize: (2 + 4) / 2
    assert disjoint_merge([T([2.0]), T([4.0])], [1.0, 1.0]).tolist() == [3.0]


def test_generalized_task_arithmetic_defaults_leave_the_deltas_alone():
    anchor = T([1.0, 1.0])
    deltas = [T([1.0, -1.0]), T([2.0, 4.0])]
    # 1 + (1 * [1, -1] + 0.5 * [2, 4]): lambda 1, no normalization, no consensus
    assert_close(generalized_task_arithmetic(anchor, deltas, [1.0, 0.5]), T([3.0, 2.0]))
    assert deltas[0].tolist() == [1.0, -1.0] and deltas[1].tolist() == [2.0, 4.0]


def test_generalized_task_arithmetic_passes_its_options_through():
    anchor = T([10.0, 10.0])
    deltas = [T([1.0, -2.0]), T([-1.0, -1.0])]
    # consensus "count" with normalize: e0 votes +/- tie -> +, only 1 agrees -> 1 / 1; e1 both agree -> -3 / 2
    got = generalized_task_arithmetic(anchor, deltas, [1.0, 1.0], consensus="count", normalize=True)
    assert_close(got, T([11.0, 8.5]))
    # inplace: the deltas are used as scratch space (weighted in place)
    scratch = [T([1.0, 2.0]), T([3.0, 4.0])]
    generalized_task_arithmetic(anchor, scratch, [2.0, 1.0], inplace=True)
    assert scratch[0].tolist() == [5.0, 8.0]  # 2 * [1, 2] = [2, 4], then [3, 4] added in place
