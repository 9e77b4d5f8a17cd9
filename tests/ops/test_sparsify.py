"""Sparsification: magnitude top-k (TIES trim), DARE, breadcrumbs; the chunked radix cut."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.ops import RankCut, breadcrumbs, dare, magnitude, top_k_cuts
from asr_analogy.ops.sparsify import breadcrumbs_ks, magnitude_k

X = torch.tensor([0.1, -3.0, 2.0, 0.5, -0.2, 1.0])

MAGNITUDE_CASES = [
    # density, expected: keep the max(1, int(density * 6)) largest |x|
    (1.0, [0.1, -3.0, 2.0, 0.5, -0.2, 1.0]),
    (0.5, [0.0, -3.0, 2.0, 0.0, 0.0, 1.0]),  # k = 3: |-3|, |2|, |1|
    (0.34, [0.0, -3.0, 2.0, 0.0, 0.0, 0.0]),  # k = int(2.04) = 2
    (0.01, [0.0, -3.0, 0.0, 0.0, 0.0, 0.0]),  # k = max(1, 0) = 1
    (0.0, [0.0] * 6),
]


@pytest.mark.parametrize("density,expected", MAGNITUDE_CASES)
def test_magnitude(density, expected):
    assert_close(magnitude(X, density), torch.tensor(expected))


def test_magnitude_ties_keep_lower_index_and_other_dtypes():
    assert_close(magnitude(torch.tensor([1.0, 1.0, 1.0, 1.0]), 0.5), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        out = magnitude(X.to(dtype), 0.5)
        assert out.dtype == dtype
        assert_close(out, torch.tensor(MAGNITUDE_CASES[1][1], dtype=dtype))


def test_magnitude_l1_rescale_restores_the_l1_norm():
    # kept |-3| + |2| + |1| = 6 of a total 6.8 -> survivors times 6.8 / 6
    out = magnitude(X, 0.5, rescale="l1")
    assert_close(out, torch.tensor([0.0, -3.0, 2.0, 0.0, 0.0, 1.0]) * (6.8 / 6.0))


def test_breadcrumbs_drops_the_top_gamma_and_the_bottom():
    # n = 6, density 0.5 -> keep 3; gamma 0.2 -> drop int(1.2) = 1 at the top (|-3|) and 6 - 3 - 1 = 2 at
    # the bottom (|0.1|, |-0.2|): keep 0.5, 1.0, 2.0
    assert_close(breadcrumbs(X, 0.5, gamma=0.2), torch.tensor([0.0, 0.0, 2.0, 0.5, 0.0, 1.0]))
    # density + gamma > 1: the top drop shrinks so that int(0.9 * 6) = 5 remain (only |-3| goes)
    assert_close(breadcrumbs(X, 0.9, gamma=0.5), torch.tensor([0.1, 0.0, 2.0, 0.5, -0.2, 1.0]))
    assert breadcrumbs_ks(6, 0.5, 0.2) == (4, 1)


def test_dare_drops_and_rescales_by_inverse_density():
    x = torch.arange(1, 2001, dtype=torch.float32)
    out = dare(x, 0.25, torch.Generator().manual_seed(3))
    kept = out != 0
    # survivors are x / 0.25 exactly, the rest are 0; about a quarter survive
    assert_close(out[kept], x[kept] * 4.0)
    assert 400 < int(kept.sum()) < 600
    again = dare(x, 0.25, torch.Generator().manual_seed(3))
    other = dare(x, 0.25, torch.Generator().manual_seed(4))
    assert torch.equal(out, again) and not torch.equal(out, other)
    assert torch.equal(dare(x, 1.0), x)
    assert torch.equal(dare(x, 0.0), torch.zeros_like(x))


def test_dare_l1_rescale_matches_the_norm():
    x = torch.arange(1, 101, dtype=torch.float32)
    out = dare(x, 0.5, torch.Generator().manual_seed(0), rescale="l1")
    assert_close(out.abs().sum(), x.abs().sum())


def _apply_chunked(cut: RankCut, x: torch.Tensor, chunk: int) -> torch.Tensor:
    seen, parts = 0, []
    for s in range(0, x.numel(), chunk):
        kept, seen = cut.keep(x[s : s + chunk], seen)
        parts.append(kept)
    return torch.cat(parts)


@pytest.mark.parametrize("values", ["continuous", "few_distinct"])
def test_radix_cut_over_chunks_equals_topk(values):
    gen = torch.Generator().manual_seed(0)
    n = 200_003  # larger than the sorting fast path: exercises both radix passes
    if values == "continuous":
        x = torch.randn(n, generator=gen)
    else:  # heavy ties at the threshold: the edge value is shared across chunks
        x = torch.randint(-3, 4, (n,), generator=gen).float() * 0.5
    chunk = 30_000
    # reference: descending |x|, equal |x| in index order (a stable sort of -|x|)
    order = torch.sort(-x.abs(), stable=True).indices
    for density in (0.1, 0.5, 0.77):
        k = magnitude_k(n, density)
        (cut,) = top_k_cuts(lambda: (x[s : s + chunk] for s in range(0, n, chunk)), [k], n)
        expected = torch.zeros_like(x)
        expected[order[:k]] = x[order[:k]]
        assert torch.equal(_apply_chunked(cut, x, chunk), expected)
        assert torch.equal(magnitude(x, density), expected)


def test_radix_cut_rejects_non_finite():
    x = torch.ones(100_000)
    x[5] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        top_k_cuts(lambda: [x], [10], x.numel())
