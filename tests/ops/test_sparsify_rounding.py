"""How many entries sparsification keeps when ``density * numel`` has a fraction: the count is truncated
(``int``), never rounded, as in mergekit. Hand-computed on six entries.

X = [0.1, -3.0, 2.0, 0.5, -0.2, 1.0]; magnitudes ranked: 3.0 > 2.0 > 1.0 > 0.5 > 0.2 > 0.1.
"""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.ops import breadcrumbs, magnitude

X = torch.tensor([0.1, -3.0, 2.0, 0.5, -0.2, 1.0])

TRUNCATION_CASES = [
    # density, kept count, expected. Rounding would keep one entry more in every row.
    (0.45, 2, [0.0, -3.0, 2.0, 0.0, 0.0, 0.0]),  # 0.45 * 6 = 2.7 -> 2
    (0.6, 3, [0.0, -3.0, 2.0, 0.0, 0.0, 1.0]),  # 3.6 -> 3
    (0.99, 5, [0.0, -3.0, 2.0, 0.5, -0.2, 1.0]),  # 5.94 -> 5: only the smallest |0.1| goes
]


@pytest.mark.parametrize("density,kept,expected", TRUNCATION_CASES)
def test_magnitude_truncates_density_times_numel(density, kept, expected):
    out = magnitude(X, density)
    assert int((out != 0).sum()) == kept
    assert_close(out, torch.tensor(expected))


def test_magnitude_keeps_at_least_one_entry_below_one_over_numel():
    # 0.1 * 6 = 0.6 -> int 0 -> max(1, 0) = 1: the largest magnitude stays
    assert_close(magnitude(X, 0.1), torch.tensor([0.0, -3.0, 0.0, 0.0, 0.0, 0.0]))


def test_breadcrumbs_truncates_both_density_and_gamma_counts():
    # density 0.45 -> int(2.7) = 2 kept; gamma 0.25 -> int(1.5) = 1 dropped at the top (|-3|);
    # the 3 smallest (0.5, 0.2, 0.1) are dropped at the bottom: 2.0 and 1.0 remain.
    assert_close(breadcrumbs(X, 0.45, gamma=0.25), torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0, 1.0]))
