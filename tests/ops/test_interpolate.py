"""Linear averaging and SLERP (hand-computed values)."""

import math

import torch
from torch.testing import assert_close

from asr_analogy.ops import linear, slerp, slerp_coefficients

T = torch.tensor


def test_linear_weighted_average_and_unnormalized_sum():
    a, b = T([0.0, 4.0]), T([4.0, 0.0])
    assert_close(linear([a, b], [1.0, 3.0]), T([3.0, 1.0]))  # (1*a + 3*b) / 4
    assert_close(linear([a, b], [1.0, 3.0], normalize=False), T([12.0, 4.0]))
    half = linear([a.bfloat16(), b.bfloat16()], [1.0, 1.0])
    assert half.dtype == torch.bfloat16 and torch.equal(half, T([2.0, 2.0], dtype=torch.bfloat16))


def test_slerp_of_orthogonal_unit_vectors_stays_on_the_circle():
    v0, v1 = T([1.0, 0.0]), T([0.0, 1.0])
    s = math.sqrt(0.5)
    assert_close(slerp(0.5, v0, v1), T([s, s]))
    # t = 1/3 of a right angle: (cos 30deg, sin 30deg)
    assert_close(slerp(1 / 3, v0, v1), T([math.cos(math.pi / 6), math.sin(math.pi / 6)]))
    assert_close(slerp(0.0, v0, v1), v0)
    assert_close(slerp(1.0, v0, v1), v1)


def test_slerp_falls_back_to_lerp_for_colinear_vectors():
    v0, v1 = T([1.0, 2.0]), T([2.0, 4.0])  # cosine 1
    assert_close(slerp(0.25, v0, v1), 0.75 * v0 + 0.25 * v1)
    assert slerp_coefficients(0.25, 0.99999) == (0.75, 0.25)
    # antipodal vectors are colinear too
    assert slerp_coefficients(0.5, -1.0) == (0.5, 0.5)


def test_slerp_uses_the_unnormalized_tensors_and_keeps_dtype_and_shape():
    v0 = T([[2.0, 0.0]], dtype=torch.float16)
    v1 = T([[0.0, 4.0]], dtype=torch.float16)
    s = math.sqrt(0.5)
    out = slerp(0.5, v0, v1)
    assert out.dtype == torch.float16 and out.shape == (1, 2)
    assert_close(out, T([[2 * s, 4 * s]], dtype=torch.float16))
