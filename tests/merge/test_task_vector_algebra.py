"""``TaskVector`` arithmetic: sum, difference, scaling and negation, against hand values."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.errors import MergeError
from asr_analogy.merge import TaskVector

T = torch.tensor


def tv(values, fingerprint=None):
    return TaskVector({"w": T(values)}, fingerprint)


def test_difference_subtracts_name_by_name():
    d = tv([3.0, 1.0, -2.0]) - tv([1.0, 4.0, -2.0])
    assert_close(d["w"], T([2.0, -3.0, 0.0]))
    assert d.method == "(finetuned - base) - (finetuned - base)"
    # not commutative: b - a is the negation
    assert_close((tv([1.0, 4.0, -2.0]) - tv([3.0, 1.0, -2.0]))["w"], T([-2.0, 3.0, 0.0]))


def test_sum_scale_and_negation():
    a, b = tv([3.0, 1.0, -2.0]), tv([1.0, 4.0, -2.0])
    assert_close((a + b)["w"], T([4.0, 5.0, -4.0]))
    assert_close((0.5 * a)["w"], T([1.5, 0.5, -1.0]))
    assert_close((a * 2)["w"], T([6.0, 2.0, -4.0]))
    assert_close((-a)["w"], T([-3.0, -1.0, 2.0]))
    # (a + b) - b returns a; a - a is zero
    assert_close(((a + b) - b)["w"], a["w"])
    assert_close((a - a)["w"], T([0.0, 0.0, 0.0]))


def test_difference_applied_to_a_state_dict():
    # base + 2 * (a - b) = [1, 1, 1] + 2 * [2, -3, 0]
    out = (tv([3.0, 1.0, -2.0]) - tv([1.0, 4.0, -2.0])).apply_to({"w": T([1.0, 1.0, 1.0])}, 2.0)
    assert_close(out["w"], T([5.0, -5.0, 1.0]))


def test_difference_of_vectors_from_different_bases_is_refused():
    with pytest.raises(MergeError, match="different bases"):
        tv([1.0, 1.0, 1.0], "sha256:aa") - tv([1.0, 1.0, 1.0], "sha256:bb")
