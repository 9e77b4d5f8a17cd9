"""``apply`` adds a vector in float32 (at least) and rounds once to the base dtype.

bfloat16 has 8 significant bits: between 256 and 512 its spacing is 2, so 256 + 1.001 = 257.001 rounds to 258.
Computing in bfloat16 instead would round twice: 1.001 -> 1.0 (spacing 2^-7 near 1), then 256 + 1 = 257, a tie
that rounds to the even 256 -- the vector would be lost.
"""

import torch

from asr_analogy.ops import apply


def test_bf16_base_with_float32_vector_rounds_once():
    base = torch.tensor([256.0, 256.0, 1.0], dtype=torch.bfloat16)
    vector = torch.tensor([1.001, 0.999, 0.001], dtype=torch.float32)
    out = apply(base, vector)
    assert out.dtype == torch.bfloat16
    # 257.001 -> 258; 256.999 -> 256 (below the midpoint 257); 1.001 -> 1.0 (spacing 2^-7 = 0.0078 near 1)
    assert out.tolist() == [258.0, 256.0, 1.0]


def test_bf16_state_dict_apply_with_a_scale_rounds_once():
    base = {"w": torch.tensor([256.0, -256.0], dtype=torch.bfloat16), "n": torch.tensor([3])}
    vector = {"w": torch.tensor([2.002, 2.002], dtype=torch.float32)}
    out = apply(base, vector, 0.5)
    # 256 + 0.5 * 2.002 = 257.001 -> 258; -256 + 1.001 = -254.999 -> -255 (spacing 1 below 256).
    # In bfloat16 arithmetic 2.002 -> 2.0 and 256 + 1 = 257 -> 256 (tie to even).
    assert out["w"].tolist() == [258.0, -255.0]
    assert torch.equal(out["n"], torch.tensor([3]))
