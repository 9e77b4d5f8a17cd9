"""Edges of sparsification, each with hand values: the l2 and linf rescales and their small-norm guard, ties at
the cut (one or several of the equal magnitudes kept), the whole-bucket cut of the radix select, neighbouring
float32 values on either side of a cut, several tensors cut together where one needs no cut, non-finite
values, the one-entry tensor, breadcrumbs without an outlier drop, DARE's ``"inverse"`` rescale and density 1.

X = [0.1, -3.0, 2.0, 0.5, -0.2, 1.0]; magnitudes ranked: 3.0 > 2.0 > 1.0 > 0.5 > 0.2 > 0.1.
"""

import math

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.ops import RankCut, breadcrumbs, dare, magnitude, top_k_cuts
from asr_analogy.ops.sparsify import breadcrumbs_ks, magnitude_keys, top_k_cuts_many

T = torch.tensor
X = T([0.1, -3.0, 2.0, 0.5, -0.2, 1.0])
BIG = 70_000  # above the sorting fast path (65536 entries): the radix select runs


def _below(v: float) -> float:
    """The float32 just below ``v`` (its bit pattern minus one)."""
    return float(torch.nextafter(T([v]), T([0.0])))


# --- rescale ---------------------------------------------------------------------------------------------


def test_l2_rescale_restores_the_euclidean_norm():
    # |X|^2 = 0.01 + 9 + 4 + 0.25 + 0.04 + 1 = 14.3; kept [-3, 2, 1]: 14 -> survivors times sqrt(14.3 / 14)
    out = magnitude(X, 0.5, rescale="l2")
    assert_close(out, T([0.0, -3.0, 2.0, 0.0, 0.0, 1.0]) * math.sqrt(14.3 / 14.0))


def test_linf_rescale_restores_the_largest_magnitude():
    # breadcrumbs (density 0.5, gamma 0.2) keeps [2, 0.5, 1] and drops |-3|: max 2 -> 3, factor 1.5
    out = breadcrumbs(X, 0.5, gamma=0.2, rescale="linf")
    assert_close(out, T([0.0, 0.0, 3.0, 0.75, 0.0, 1.5]))
    # l1 on breadcrumbs: kept 2 + 0.5 + 1 = 3.5 of 6.8
    assert_close(breadcrumbs(X, 0.5, gamma=0.2, rescale="l1"), T([0.0, 0.0, 2.0, 0.5, 0.0, 1.0]) * (6.8 / 3.5))


def test_rescale_of_norms_below_one_still_applies():
    # norms of 0.68 and 0.6 are well above the 1e-7 guard: survivors times 0.68 / 0.6
    out = magnitude(X * 0.1, 0.5, rescale="l1")
    assert_close(out, T([0.0, -0.3, 0.2, 0.0, 0.0, 0.1]) * (0.68 / 0.6))


def test_rescale_is_skipped_only_when_a_norm_is_below_the_guard():
    # breadcrumbs on 4 entries, density 0.25, gamma 0.25: drop |4| at the top, keep 1e-9 (norm below 1e-7)
    out = breadcrumbs(T([4.0, 1e-9, 0.0, 0.0]), 0.25, gamma=0.25, rescale="l1")
    assert out.tolist() == [0.0, T(1e-9).item(), 0.0, 0.0]
    # a kept norm of exactly float32(1e-7) is not below the guard: rescaled to the whole l1 norm 1 + 1e-7
    eps = T(1e-7).item()
    out = breadcrumbs(T([1.0, 1e-7, 0.0, 0.0]), 0.25, gamma=0.25, rescale="l1")
    assert_close(out, T([0.0, 1.0 + eps, 0.0, 0.0]))


def test_unknown_rescale_norm_is_named():
    with pytest.raises(ValueError, match=r"unknown rescale norm 'l3' \(l1, l2, linf\)"):
        magnitude(X, 0.5, rescale="l3")


# --- ties and neighbours at the cut --------------------------------------------------------------------


def test_ties_at_the_cut_keep_the_first_equal_entries_in_flat_order():
    # k = 2 of [1, 3, 1, 1]: 3 and the first 1 (one of three equal magnitudes taken)
    assert_close(magnitude(T([1.0, 3.0, 1.0, 1.0]), 0.5), T([1.0, 3.0, 0.0, 0.0]))
    # k = 3 of [1, 3, 1, 1, 1, 1]: 3 and the first two 1s (one magnitude above the tie)
    assert_close(magnitude(T([1.0, 3.0, -1.0, 1.0, 1.0, 1.0]), 0.5), T([1.0, 3.0, -1.0, 0.0, 0.0, 0.0]))
    # the same in float64 (the general mask path)
    x64 = T([1.0, 3.0, 1.0, 1.0], dtype=torch.float64)
    assert_close(magnitude(x64, 0.5), T([1.0, 3.0, 0.0, 0.0], dtype=torch.float64))


def test_cut_without_a_tie_across_it_is_a_plain_threshold():
    # the k-th magnitude is not shared across the cut: a threshold just below it, no tie bookkeeping
    (cut,) = top_k_cuts(lambda: [X], [2], 6)
    assert cut == RankCut(key=int(magnitude_keys(T([2.0]))) - 1)
    # ties on both sides: keep > 1 plus the first two entries equal to 1
    one = int(magnitude_keys(T([1.0])))
    (cut,) = top_k_cuts(lambda: [T([1.0, 3.0, 1.0, 1.0, 1.0, 1.0])], [3], 6)
    assert cut == RankCut(key=one, edge=one, take_equal=2)


def test_mask_called_without_a_count_starts_at_the_first_chunk():
    one = int(magnitude_keys(T([1.0])))
    keep, seen = RankCut(key=one, edge=one, take_equal=1).mask(magnitude_keys(T([1.0, 2.0, 1.0])))
    assert keep.tolist() == [True, True, False] and seen == 2


def test_the_float32_just_below_the_cut_is_dropped():
    below = _below(1.0)  # 1 - 2^-24, key of 1.0 minus one
    assert_close(magnitude(T([2.0, 1.0, below]), 0.67), T([2.0, 1.0, 0.0]))


def test_radix_cut_that_takes_a_whole_high_digit_bucket():
    # 2.0 has key 0x40000000 (low 16 bits zero): 3 entries of 2.0 fill their bucket exactly; the float32
    # just below 2 (another bucket) and the 1.0s must go
    x = torch.ones(BIG)
    x[:3] = 2.0
    x[10] = _below(2.0)
    (cut,) = top_k_cuts(lambda: [x], [3], BIG)
    assert cut == RankCut(key=0x40000000 - 1)
    expected = torch.zeros(BIG)
    expected[:3] = 2.0
    assert torch.equal(cut.keep(x)[0], expected)


def test_radix_cut_inside_a_bucket_with_neighbours_and_ties():
    # one bucket (high digit of 1.0) holds 1 + 2^-22, 1 + 2^-23 and three 1.0s; 0.5 fills the rest
    hi, mid = 1.0 + 2.0**-22, 1.0 + 2.0**-23
    x = torch.full((BIG,), 0.5)
    x[100], x[200], x[300:303] = mid, hi, 1.0
    # k = 1: only the largest; the neighbour key just below it stays out
    (cut,) = top_k_cuts(lambda: [x], [1], BIG)
    assert int((cut.keep(x)[0] != 0).sum()) == 1 and cut.keep(x)[0][200] == hi
    # k = 4: hi, mid and the first two 1.0s (two of three equal magnitudes, after two above them)
    (cut,) = top_k_cuts(lambda: [x], [4], BIG)
    kept = cut.keep(x)[0]
    assert kept.nonzero().flatten().tolist() == [100, 200, 300, 301]
    # k = 5: every 1.0 of the bucket; the 0.5s below it count for nothing
    (cut,) = top_k_cuts(lambda: [x], [5], BIG)
    assert cut == RankCut(key=int(magnitude_keys(T([1.0]))) - 1)


# --- several tensors, trivial cuts, non-finite values -------------------------------------------------


@pytest.mark.parametrize("n", [6, BIG])
def test_several_tensors_where_the_first_needs_no_cut(n):
    gen = torch.Generator().manual_seed(0)
    first = torch.randn(n, generator=gen)
    second = torch.randn(n, generator=gen)
    # a tie across the cut (10.1 has non-zero low 16 bits): the radix select needs its second pass
    second[1:4] = 10.1
    cuts = top_k_cuts_many(lambda: [(first, second)], [[n, 0], [2]], n)
    assert cuts[0] == [RankCut.everything(), RankCut.nothing()]
    expected = torch.zeros(n)
    expected[1:3] = 10.1
    assert torch.equal(cuts[1][0].keep(second)[0], expected)


def test_trivial_cuts_do_not_read_the_tensor():
    calls = []

    def chunks():
        calls.append(1)
        return [T([float("inf"), 1.0, 2.0])]

    assert top_k_cuts(chunks, [3, 5, 0], 3) == [RankCut.everything(), RankCut.everything(), RankCut.nothing()]
    assert calls == []


@pytest.mark.parametrize("n", [3, BIG])
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_values_are_refused_by_name(n, bad):
    x = torch.ones(n)
    x[1] = bad
    with pytest.raises(ValueError, match=r"^magnitude selection needs finite values \(found NaN or Inf\)$"):
        top_k_cuts(lambda: [x], [1], n)


# --- counts -------------------------------------------------------------------------------------------


def test_one_entry_tensor_keeps_its_entry():
    assert magnitude(T([2.0]), 0.5).tolist() == [2.0]


def test_breadcrumbs_without_outlier_drop_and_below_one_entry():
    # gamma 0: nothing dropped at the top; density 0.5 keeps the 3 largest (k_outer 3, k_top 0)
    assert breadcrumbs_ks(6, 0.5, 0.0) == (3, 0)
    assert_close(breadcrumbs(X, 0.5, gamma=0.0), T([0.0, -3.0, 2.0, 0.0, 0.0, 1.0]))
    # density 0.1: int(0.6) = 0 entries kept (no minimum of one, unlike magnitude)
    assert breadcrumbs_ks(6, 0.1, 0.0) == (0, 0)
    assert breadcrumbs_ks(6, 0.1, 0.2) == (1, 1)
    assert torch.equal(breadcrumbs(X, 0.1, gamma=0.2), torch.zeros(6))


def test_breadcrumbs_default_gamma_drops_one_percent_at_the_top():
    # 200 entries 1..200, density 0.5: keep 100; default gamma 0.01 drops 200 and 199, so 99..198 remain
    x = torch.arange(1, 201, dtype=torch.float32)
    expected = torch.where((x >= 99) & (x <= 198), x, torch.zeros(()))
    assert torch.equal(breadcrumbs(x, 0.5), expected)


def test_density_one_or_more_returns_the_input_itself():
    x = T([1.0, float("inf"), -2.0])  # not even scanned
    for density in (1.0, 1.5):
        assert magnitude(x, density) is x
        assert breadcrumbs(x, density) is x
        assert dare(x, density) is x


def test_dare_inverse_rescale_and_dtype():
    x = torch.arange(1, 101, dtype=torch.float32)
    plain = dare(x, 0.5, torch.Generator().manual_seed(1))
    inverse = dare(x, 0.5, torch.Generator().manual_seed(1), rescale="inverse")
    assert torch.equal(inverse, plain)
    kept = inverse != 0
    assert torch.equal(inverse[kept], x[kept] * 2.0)
    # no rescale: survivors unchanged
    bare = dare(x, 0.5, torch.Generator().manual_seed(1), rescale=None)
    assert torch.equal(bare[kept], x[kept]) and torch.equal(bare != 0, kept)
    half = dare(x.bfloat16(), 0.5, torch.Generator().manual_seed(1))
    assert half.dtype == torch.bfloat16


def test_keep_everything_keeps_the_smallest_subnormal():
    # breadcrumbs on 4 entries, density 0.75, gamma 0.25: nothing dropped at the bottom (keep-everything
    # cut), |3| dropped at the top; 2^-149, the smallest positive float32, stays
    tiny = 2.0**-149
    assert breadcrumbs(T([tiny, 1.0, 2.0, 3.0]), 0.75, gamma=0.25).tolist() == [tiny, 1.0, 2.0, 0.0]
