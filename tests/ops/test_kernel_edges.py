"""Edges of the task-vector kernel that the main tests leave open, each with hand values: tensor-level add and
scale, the "count" election over three deltas, writing into ``out``, float64 precision of ``linear``, error
messages that name the side, and integer buffers ahead of floating tensors in a state dict."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.errors import MergeError
from asr_analogy.ops import add, apply, elect_sign, generalized_task_arithmetic, linear, scale, task_vector

T = torch.tensor


def test_add_and_scale_on_tensors():
    assert_close(add(T([1.0, -2.0]), T([0.5, 4.0])), T([1.5, 2.0]))
    assert_close(scale(T([1.0, -2.0]), 4.0), T([4.0, -8.0]))


def test_count_election_sums_the_signs_of_every_delta():
    # signs per entry over three deltas: [+, -, -] -> -1; [+, +, -] -> +1; [-, -, -] -> -3
    deltas = [T([5.0, 1.0, -1.0]), T([-1.0, 1.0, -1.0]), T([-1.0, -9.0, -1.0])]
    assert_close(elect_sign(deltas, "count"), T([-1.0, 1.0, -1.0]))
    # by mass instead: [3, -7, -3]
    assert_close(elect_sign(deltas, "sum"), T([1.0, -1.0, -1.0]))


def test_generalized_task_arithmetic_writes_into_out_with_lambda():
    anchor = T([1.0, 1.0])
    out = torch.empty(2)
    # 1 + 2 * (1 * [1, -1] + 0.5 * [2, 4]) = [1 + 4, 1 + 2]
    got = generalized_task_arithmetic(anchor, [T([1.0, -1.0]), T([2.0, 4.0])], [1.0, 0.5], lam=2.0, out=out)
    assert got.data_ptr() == out.data_ptr()
    assert_close(out, T([5.0, 3.0]))
    assert_close(anchor, T([1.0, 1.0]))  # the anchor is left alone


def test_linear_of_float64_tensors_keeps_float64_precision():
    # 1 + 1e-12 is not representable in float32; the mean of (1 + 2e-12) and 1 is 1 + 1e-12 in float64
    a = torch.tensor([1.0 + 2e-12], dtype=torch.float64)
    b = torch.tensor([1.0], dtype=torch.float64)
    out = linear([a, b], [1.0, 1.0])
    assert out.dtype == torch.float64
    assert out.item() == pytest.approx(1.0 + 1e-12, abs=1e-15)


def test_linear_returns_the_first_tensors_dtype():
    out = linear([T([1.0], dtype=torch.bfloat16), T([3.0])], [1.0, 1.0])
    assert out.dtype == torch.bfloat16 and out.item() == 2.0


def test_state_dict_vector_with_an_integer_buffer_first():
    ft = {"steps": T([7]), "w": T([3.0, 4.0])}
    base = {"steps": T([5]), "w": T([1.0, 1.0])}
    tau = task_vector(ft, base)
    assert list(tau) == ["w"] and tau["w"].tolist() == [2.0, 3.0]


def test_errors_name_the_tensor_and_the_side():
    with pytest.raises(MergeError, match=r"tensor 'b' is missing from the base model \(1 names differ\)"):
        task_vector({"a": T([1.0]), "b": T([1.0])}, {"a": T([1.0])})
    with pytest.raises(MergeError, match=r"tensor 'b' is missing from the finetuned model"):
        task_vector({"a": T([1.0])}, {"a": T([1.0]), "b": T([1.0])})
    with pytest.raises(MergeError, match=r"tensor '<tensor>': shape \[2\] in finetuned but \[3\] in base"):
        task_vector(T([1.0, 2.0]), T([1.0, 2.0, 3.0]))
    with pytest.raises(MergeError, match=r"tensor '<tensor>': shape \[2\] in base but \[1\] in vector"):
        apply(T([1.0, 2.0]), T([1.0]))
    with pytest.raises(MergeError, match=r"differ in tensor names, e.g. 'b' \(1 names\)"):
        add({"a": T([1.0])}, {"a": T([1.0]), "b": T([1.0])})


def test_apply_copies_integer_buffers_named_in_the_vector():
    out = apply({"n": T([3])}, {"n": T([1])})
    assert out["n"].tolist() == [3]


def test_task_vector_takes_the_finetuned_dtype():
    ft = T([1.5], dtype=torch.float32)
    base = T([0.25], dtype=torch.float64)
    assert task_vector(ft, base).dtype == torch.float32
    tau = task_vector({"w": ft}, {"w": base})
    assert tau["w"].dtype == torch.float32 and tau["w"].item() == 1.25


def test_state_dict_shape_error_names_both_sides():
    with pytest.raises(MergeError, match=r"^tensor 'a': shape \[3\] in finetuned but \[2\] in base$"):
        task_vector({"a": torch.zeros(3)}, {"a": torch.zeros(2)})


def test_bf16_base_and_bf16_vector_round_once():
    # 0.995 * (1 + 2^-7) = 1.0027 in float32, 256 + 1.0027 -> 258 in bfloat16 (spacing 2 above 256).
    # In bfloat16 the product rounds to 1.0 first and 256 + 1 = 257 ties to the even 256.
    base = T([256.0], dtype=torch.bfloat16)
    vector = T([1.0078125], dtype=torch.bfloat16)
    out = apply(base, vector, 0.995)
    assert out.dtype == torch.bfloat16 and out.tolist() == [258.0]
