"""Edges of the interference measures, with hand values: a zero entry in both top-k masks is no sign conflict,
and the summary names every rate and norm."""

import math

import torch

from asr_analogy.ops.interference import PairStats, pair_stats

T = torch.tensor


def test_a_zero_entry_is_not_a_sign_conflict():
    a, b = T([-1.0, 2.0, -3.0]), T([0.0, 1.0, 4.0])
    every = torch.ones(3, dtype=torch.bool)
    s = pair_stats(a, b, every, every)
    # entry 0: b is 0 (no sign); entry 1: same sign; entry 2: opposite
    assert (s.both, s.conflicts, s.either) == (3, 1, 3)


def test_summary_names_the_rates_and_norms():
    s = PairStats(dot=6.0, sq_a=4.0, sq_b=9.0, both=2, conflicts=1, either=4)
    assert s.summary() == {"cosine": 1.0, "sign_conflict": 0.5, "jaccard": 0.5, "norm_a": 2.0, "norm_b": 3.0}
    assert math.isnan(PairStats().summary()["cosine"])
