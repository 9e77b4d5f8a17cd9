"""Task vectors: tau = ft - base, apply, negate, on tensors and state dicts (hand-computed values)."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.errors import MergeError
from asr_analogy.ops import add, apply, negate, scale, task_vector


def test_task_vector_and_apply_on_tensors():
    ft = torch.tensor([1.5, 2.0, -1.0])
    base = torch.tensor([1.0, 2.5, 0.0])
    tau = task_vector(ft, base)
    assert_close(tau, torch.tensor([0.5, -0.5, -1.0]))
    # base + 0.5 * tau = [1 + 0.25, 2.5 - 0.25, 0 - 0.5]
    assert_close(apply(base, tau, 0.5), torch.tensor([1.25, 2.25, -0.5]))
    assert_close(apply(base, tau), ft)


def test_state_dict_vector_skips_integer_buffers_and_apply_copies_them():
    ft = {"w": torch.tensor([3.0, 4.0]), "steps": torch.tensor([7])}
    base = {"w": torch.tensor([1.0, 1.0]), "steps": torch.tensor([5])}
    tau = task_vector(ft, base)
    assert set(tau) == {"w"}
    assert_close(tau["w"], torch.tensor([2.0, 3.0]))
    out = apply(base, tau, -1.0)  # negation: [1 - 2, 1 - 3]
    assert_close(out["w"], torch.tensor([-1.0, -2.0]))
    assert torch.equal(out["steps"], torch.tensor([5]))


def test_negate_scale_add():
    tau = {"w": torch.tensor([1.0, -2.0])}
    assert_close(negate(tau)["w"], torch.tensor([-1.0, 2.0]))
    assert_close(scale(tau, 0.25)["w"], torch.tensor([0.25, -0.5]))
    assert_close(add(tau, tau)["w"], torch.tensor([2.0, -4.0]))


def test_tau_then_minus_tau_restores_the_base_exactly_in_float64():
    base = {"w": torch.tensor([0.125, -3.5, 10.0], dtype=torch.float64)}
    tau = {"w": torch.tensor([0.25, 0.5, -1.75], dtype=torch.float64)}
    there = apply(base, tau, 1.0)
    back = apply(there, tau, -1.0)
    assert torch.equal(back["w"], base["w"])


def test_apply_keeps_base_dtype_and_computes_in_float32():
    base = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    tau = torch.tensor([0.5, -0.25], dtype=torch.float32)
    out = apply(base, tau)
    assert out.dtype == torch.bfloat16
    assert_close(out, torch.tensor([1.5, 1.75], dtype=torch.bfloat16))


def test_mismatched_names_and_shapes_are_errors_naming_the_tensor():
    with pytest.raises(MergeError, match="'b'"):
        task_vector({"a": torch.zeros(2), "b": torch.zeros(2)}, {"a": torch.zeros(2)})
    with pytest.raises(MergeError, match=r"'a'.*\[3\].*\[2\]"):
        task_vector({"a": torch.zeros(3)}, {"a": torch.zeros(2)})
    with pytest.raises(MergeError, match="'extra'"):
        apply({"a": torch.zeros(2)}, {"extra": torch.zeros(2)})
