"""Interference measures against hand-computed values."""

import math

import torch

from asr_analogy.ops.interference import PairStats, pair_stats, top_mask


def test_cosine_sign_conflict_and_overlap_by_hand():
    a = torch.tensor([3.0, -2.0, 0.5, 1.0])
    b = torch.tensor([-1.0, -4.0, 2.0, 0.1])
    ma, mb = top_mask(a, 0.5), top_mask(b, 0.5)  # a: entries 0, 1; b: entries 1, 2
    assert ma.tolist() == [True, True, False, False] and mb.tolist() == [False, True, True, False]
    s = pair_stats(a, b, ma, mb)
    # a.b = -3 + 8 + 1 + 0.1 = 6.1; |a|^2 = 14.25; |b|^2 = 21.01
    assert math.isclose(s.cosine, 6.1 / math.sqrt(14.25 * 21.01))
    assert (s.both, s.conflicts, s.either) == (1, 0, 3)  # entry 1 in both, same sign
    assert s.sign_conflict == 0.0 and math.isclose(s.jaccard, 1 / 3)
    c = torch.tensor([-3.0, 2.0, 0.0, 0.0])  # opposite of a's top entries
    s2 = pair_stats(a, c, ma, top_mask(c, 0.5))
    assert (s2.both, s2.conflicts) == (2, 2) and s2.sign_conflict == 1.0 and s2.jaccard == 1.0
    total = s + s2  # sums add over tensors
    assert (total.both, total.conflicts, total.either) == (3, 2, 5)
    assert math.isclose(total.sign_conflict, 2 / 3)


def test_undefined_rates_are_nan():
    s = PairStats()
    assert math.isnan(s.cosine) and math.isnan(s.sign_conflict) and math.isnan(s.jaccard)
