"""Compression encodings against their definitions on small hand-made tensors."""

import torch

from asr_analogy.ops.compress import dequantize, lowrank_decode, lowrank_encode, quantize, topk_decode, topk_encode


def test_topk_keeps_the_largest_magnitudes():
    x = torch.tensor([[0.5, -3.0, 1.0], [2.0, -0.1, 0.0]])
    idx, val = topk_encode(x, 0.5)  # k = int(0.5 * 6) = 3: -3, 2, 1 at flat 1, 3, 2
    assert idx.tolist() == [1, 2, 3] and val.tolist() == [-3.0, 1.0, 2.0]
    assert torch.equal(topk_decode(idx, val, (2, 3)), torch.tensor([[0.0, -3.0, 1.0], [2.0, 0.0, 0.0]]))
    assert torch.equal(topk_decode(*topk_encode(x, 1.0), (2, 3)), x)  # exact at fraction 1


def test_lowrank_is_exact_at_full_rank_and_eckart_young_below():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    a, b = lowrank_encode(x, 4)
    torch.testing.assert_close(lowrank_decode(a, b), x)
    a, b = lowrank_encode(x, 1)
    s = torch.linalg.svdvals(x)
    # the best rank-1 approximation leaves exactly the other singular values as the Frobenius error
    torch.testing.assert_close(torch.linalg.norm(lowrank_decode(a, b) - x), torch.sqrt((s[1:] ** 2).sum()))
    assert a.shape == (6, 1) and b.shape == (1, 4)


def test_int8_and_int4_error_within_half_a_step():
    x = torch.tensor([1.27, -0.6, 0.0, 0.3, -1.0])
    q, scale = quantize(x, 8)
    assert abs(scale - 0.01) < 1e-9 and q.dtype == torch.int8
    assert q.tolist() == [127, -60, 0, 30, -100]  # round(x / 0.01)
    back = dequantize(q, scale, 8, 5)
    assert float((back - x).abs().max()) <= scale / 2 + 1e-7
    q4, s4 = quantize(x, 4)  # scale 1.27 / 7; codes q + 8 packed two a byte, low nibble first
    assert q4.dtype == torch.uint8 and q4.numel() == 3
    codes = [round(v / s4) + 8 for v in x.tolist()] + [8]
    assert q4.tolist() == [codes[0] | codes[1] << 4, codes[2] | codes[3] << 4, codes[4] | codes[5] << 4]
    assert float((dequantize(q4, s4, 4, 5) - x).abs().max()) <= s4 / 2 + 1e-7
    zeros, zscale = quantize(torch.zeros(3), 8)
    assert zscale == 0.0 and dequantize(zeros, zscale, 8, 3).tolist() == [0.0, 0.0, 0.0]
