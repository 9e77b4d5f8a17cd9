"""Edges of the compact encodings, each with hand values: the index and value dtypes of top-k, low rank of a
half-precision matrix, quantization of bfloat16 input, of a peak at or below 1, of an empty tensor, and the
int4 padding of an even count."""

import torch

from asr_analogy.ops.compress import dequantize, lowrank_decode, lowrank_encode, quantize, topk_decode, topk_encode

T = torch.tensor


def test_topk_indices_are_int32_and_values_keep_their_dtype():
    x = torch.zeros(100, dtype=torch.float64)
    x[70], x[5] = 2.0, -1.0
    idx, val = topk_encode(x, 0.02)  # k = 2
    assert idx.dtype == torch.int32 and idx.tolist() == [5, 70]
    assert val.dtype == torch.float64 and val.tolist() == [-1.0, 2.0]
    dense = topk_decode(idx, val, (10, 10))
    assert dense.dtype == torch.float64 and torch.equal(dense, x.reshape(10, 10))


def test_lowrank_of_bfloat16_is_computed_in_float32():
    x = T([[2.0, 0.0], [0.0, 1.0]], dtype=torch.bfloat16)
    a, b = lowrank_encode(x, 1)  # the rank-1 part: 2 at the top left
    assert a.dtype == torch.float32 and b.dtype == torch.float32
    assert torch.equal(lowrank_decode(a, b).abs(), T([[2.0, 0.0], [0.0, 0.0]]))


def test_quantize_bfloat16_divides_in_float32():
    # scale 1/127; 0.79296875 * 127 = 100.707 -> 101. Dividing in bfloat16 would give 100.5 -> 100 (to even).
    q, scale = quantize(T([1.0, 0.79296875], dtype=torch.bfloat16), 8)
    assert q.tolist() == [127, 101] and scale == 1 / 127


def test_quantize_peaks_at_and_below_one():
    q, scale = quantize(T([0.5, -0.125]), 8)  # scale 0.5 / 127: -0.125 -> -31.75 -> -32
    assert q.tolist() == [127, -32] and scale == 0.5 / 127
    q, scale = quantize(T([127.0, 3.0, -5.0]), 8)  # scale exactly 1
    assert q.tolist() == [127, 3, -5] and scale == 1.0


def test_quantize_an_empty_tensor():
    q, scale = quantize(torch.zeros(0), 8)
    assert q.numel() == 0 and scale == 0.0


def test_int4_of_an_even_count_has_no_padding_byte():
    # scale 7 / 7 = 1: codes q + 8 = [15, 1, 8, 9] -> bytes 15 | 1 << 4, 8 | 9 << 4
    codes, scale = quantize(T([7.0, -7.0, 0.0, 1.0]), 4)
    assert codes.tolist() == [15 | 1 << 4, 8 | 9 << 4] and scale == 1.0
    assert dequantize(codes, scale, 4, 4).tolist() == [7.0, -7.0, 0.0, 1.0]


def test_all_zero_input_gives_zero_codes():
    # scale 0: every code is q = 0, stored as 0 (int8) or 0 + 8 in both nibbles (int4), never 0 / 0
    q, scale = quantize(torch.zeros(3), 8)
    assert q.tolist() == [0, 0, 0] and scale == 0.0
    q, scale = quantize(torch.zeros(2), 4)
    assert q.tolist() == [8 | 8 << 4] and scale == 0.0
