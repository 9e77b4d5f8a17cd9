"""Edges of linear and spherical interpolation, each with hand values: the working dtype, float64 weights,
one rounding to bfloat16, SLERP coefficients at a cosine of 0.5, the cosine of non-unit, small and zero vectors,
and the default thresholds."""

import math

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.ops import linear, slerp, slerp_coefficients
from asr_analogy.ops.interpolate import slerp_cosine, work_dtype

T = torch.tensor
BF16, F64 = torch.bfloat16, torch.float64


def test_work_dtype_upcasts_half_precision_to_float32_only():
    assert work_dtype(torch.float32) == torch.float32
    assert work_dtype(BF16) == torch.float32
    assert work_dtype(F64) == F64


def test_linear_keeps_float64_weights_exact():
    out = linear([T([1.0], dtype=F64)], [0.1], normalize=False)
    assert out.item() == 0.1


def test_linear_of_bfloat16_rounds_once():
    # 3 * (1 + 2^-7) - 3 = 3 * 2^-7 = 0.0234375 in float32. Products in bfloat16 would round
    # 3.0234375 to 3.03125 first (spacing 2^-6 near 3) and give 0.03125.
    out = linear([T([1.0078125], dtype=BF16), T([-3.0], dtype=BF16)], [3.0, 1.0], normalize=False)
    assert out.dtype == BF16 and out.item() == 0.0234375


def test_slerp_coefficients_at_a_cosine_of_one_half():
    # theta = 60 deg; t = 1/4: c0 = sin 45 / sin 60, c1 = sin 15 / sin 60
    c0, c1 = slerp_coefficients(0.25, 0.5)
    s60 = math.sqrt(3) / 2
    assert c0 == pytest.approx(math.sqrt(0.5) / s60)
    assert c1 == pytest.approx((math.sqrt(6) - math.sqrt(2)) / 4 / s60)
    # |cos| equal to the threshold is not colinear: slerp, c = sin 30 / sin 60 = 1 / sqrt 3
    c0, c1 = slerp_coefficients(0.5, 0.5, dot_threshold=0.5)
    assert c0 == pytest.approx(1 / math.sqrt(3)) and c1 == pytest.approx(1 / math.sqrt(3))


def test_slerp_coefficients_clamp_a_cosine_below_minus_one():
    # with the lerp fallback disabled, a cosine rounded below -1 is taken as -1 (no math domain error)
    c0, c1 = slerp_coefficients(0.5, -1.0 - 1e-9, dot_threshold=2.0)
    assert c0 == c1 and math.isfinite(c0)


def test_slerp_cosine_of_non_unit_small_and_zero_vectors():
    assert slerp_cosine(4.0, 9.0, 3.0) == pytest.approx(0.5)  # 3 / (2 * 3)
    assert slerp_cosine(0.25, 0.25, 0.125) == pytest.approx(0.5)  # norms 0.5 are above eps: 0.125 / 0.25
    assert slerp_cosine(0.0, 4.0, 0.0) == 0.0  # a zero vector counts as norm 1
    # a norm equal to eps counts as 1: 0.25 / (1 * 1), on either side
    assert slerp_cosine(0.25, 1.0, 0.25, eps=0.5) == 0.25
    assert slerp_cosine(1.0, 0.25, 0.25, eps=0.5) == 0.25


def test_slerp_default_threshold_treats_a_cosine_of_0_9996_as_colinear():
    c = 0.9996
    v0, v1 = T([1.0, 0.0]), T([c, math.sqrt(1 - c * c)])
    assert_close(slerp(0.5, v0, v1), (v0 + v1) / 2)  # lerp
    # with a tighter threshold it is a true slerp: the unit bisector
    half = math.acos(c) / 2
    assert_close(slerp(0.5, v0, v1, dot_threshold=0.99999), T([math.cos(half), math.sin(half)]))


def test_slerp_of_short_vectors_uses_their_true_angle():
    # v0 = [0.5, 0.5], v1 = [0.5, 0]: cos 45 deg; t = 0.5 -> c0 = c1 = sin 22.5 / sin 45
    c = math.sin(math.pi / 8) / math.sin(math.pi / 4)
    assert_close(slerp(0.5, T([0.5, 0.5]), T([0.5, 0.0])), T([c, 0.5 * c]))
    # with eps = 1 both norms count as 1: cos = 0.25 (the raw dot), c0 = c1 = 1 / (2 cos(theta / 2)),
    # cos(theta / 2) = sqrt((1 + 0.25) / 2)
    c = 1 / (2 * math.sqrt(0.625))
    assert_close(slerp(0.5, T([0.5, 0.5]), T([0.5, 0.0]), eps=1.0), T([c, 0.5 * c]))


def test_slerp_of_float64_keeps_float64_precision():
    # colinear: lerp; the midpoint of 1 + 2e-12 and 1 is 1 + 1e-12, not representable in float32
    out = slerp(0.5, T([1.0 + 2e-12], dtype=F64), T([1.0], dtype=F64))
    assert out.dtype == F64 and out.item() == pytest.approx(1.0 + 1e-12, abs=1e-15)


def test_slerp_of_bfloat16_rounds_once():
    # colinear 1 and 3, t = 1/3: 2/3 + 1 = 5/3 in float32 -> bfloat16 (spacing 1/128) 213/128.
    # In bfloat16 arithmetic 2/3 -> 171/256 first, and 1 + 171/256 = 213.5/128 rounds to even 214/128.
    out = slerp(1 / 3, T([1.0], dtype=BF16), T([3.0], dtype=BF16))
    assert out.dtype == BF16 and out.item() == 213 / 128
    # the same point from the other end (t = 2/3 from 3 to 1)
    assert slerp(2 / 3, T([3.0], dtype=BF16), T([1.0], dtype=BF16)).item() == 213 / 128


@pytest.mark.parametrize("dot", [1.0, -1.0, 1.5])
def test_slerp_coefficients_fall_back_to_lerp_when_the_angle_has_no_sine(dot):
    # a threshold of 1 lets colinear (or anti-parallel) vectors through the colinearity test: sin(θ) is 0 there
    assert slerp_coefficients(0.3, dot, dot_threshold=1.0) == pytest.approx((0.7, 0.3), abs=0)
