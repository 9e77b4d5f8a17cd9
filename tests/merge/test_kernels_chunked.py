"""Linear and SLERP kernels over several chunks, in bfloat16 and float64, with their refusals: hand values.

A tensor of 7 entries streamed in chunks of 3 is read as [0:3], [3:6], [6:7]: a kernel that forgets a chunk,
keeps only the last one's sums or sizes a buffer wrongly shows it. Compute dtypes other than float32 show a
kernel that computes in the wrong dtype.
"""

import math

import pytest
import torch

from asr_analogy.errors import ConfigError, MergeError
from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import merge

from .conftest import write_model

T = torch.tensor
X = [1.0, -2.0, 3.0, 0.5, 4.0, -1.0, 2.0]
Y = [2.0, 1.0, -1.0, 0.5, 3.0, 2.0, -2.0]


def _models(tmp_path, dtype=torch.float32, **tensors):
    return {k: write_model(tmp_path / k, {"w": T(v, dtype=dtype)}) for k, v in tensors.items()}


def _merge(tmp_path, cfg, name="out", **kw):
    return load_state_dict(merge(cfg, tmp_path / name, progress=False, chunk_elements=3, **kw))["w"]


def _linear(ms, weights, **params):
    return {"merge_method": "linear", "parameters": params,
            "models": [{"model": str(ms[k]), "parameters": {"weight": w}} for k, w in weights.items()]}


def test_linear_over_three_chunks_with_weights_summing_to_one(tmp_path):
    ms = _models(tmp_path, x=X, y=Y)
    out = _merge(tmp_path, _linear(ms, {"x": 0.75, "y": 0.25}))
    # 0.75 x + 0.25 y, divided by 0.75 + 0.25 = 1
    assert torch.equal(out, T([1.25, -1.25, 2.0, 0.5, 3.75, -0.25, 1.0]))
    out = _merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False), "raw")
    assert torch.equal(out, T([3.0, -1.0, 2.0, 1.0, 7.0, 1.0, 0.0]))


def test_linear_in_float64_keeps_float64_precision(tmp_path):
    # 1 + 2^-40 is exact in float64 but rounds to 1 in float32
    tiny = 2.0 ** -40
    ms = _models(tmp_path, torch.float64, x=[1.0 + tiny] * 4, y=[1.0] * 4)
    out = _merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False))
    assert out.dtype == torch.float64 and torch.equal(out, torch.full((4,), 2.0 + tiny, dtype=torch.float64))


def test_linear_weights_of_exactly_1e_8_are_not_zero(tmp_path):
    ms = _models(tmp_path, torch.float64, x=[3.0, -6.0])
    out = _merge(tmp_path, _linear(ms, {"x": 1e-8}))  # 1e-8 * x / 1e-8 in float64
    torch.testing.assert_close(out, T([3.0, -6.0], dtype=torch.float64), rtol=1e-15, atol=0)


def test_linear_weights_summing_to_zero_are_refused(tmp_path):
    ms = _models(tmp_path, x=X, y=Y)
    with pytest.raises(ConfigError) as info:
        _merge(tmp_path, _linear(ms, {"x": 1.0, "y": -1.0}))
    assert str(info.value) == "<config>: linear weights sum to zero for tensor 'w'; set normalize: false"


def test_linear_in_bfloat16_computes_in_float32_and_writes_the_out_dtype(tmp_path):
    # bfloat16 has 8 significant bits: 1 + 2^-8 is not representable, 3 * 256 + 1 = 769 rounds to 768
    ms = _models(tmp_path, torch.bfloat16, x=[256.0, 1.0, 3.0], y=[1.0, 1.0, 1.0])
    out = _merge(tmp_path, _linear(ms, {"x": 3.0, "y": 1.0}, normalize=False), out_dtype="float32")
    # float32 sums: 769, 4, 10 (exact), written as float32
    assert out.dtype == torch.float32 and torch.equal(out, T([769.0, 4.0, 10.0]))
    out = _merge(tmp_path, _linear(ms, {"x": 3.0, "y": 1.0}, normalize=False), "bf16")
    assert out.dtype == torch.bfloat16 and torch.equal(out, T([768.0, 4.0, 10.0], dtype=torch.bfloat16))


def _slerp(ms, t):
    return {"merge_method": "slerp", "base_model": str(ms["x"]), "models": [{"model": str(ms["y"])}],
            "parameters": {"t": t}}


def _slerp_by_hand(x, y, t):
    """c0 x + c1 y with the angle between the whole vectors, in float64."""
    cos = sum(a * b for a, b in zip(x, y)) / math.sqrt(sum(a * a for a in x) * sum(b * b for b in y))
    theta = math.acos(cos)
    c0, c1 = math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)
    return [c0 * a + c1 * b for a, b in zip(x, y)]


def test_slerp_takes_the_angle_over_every_chunk(tmp_path):
    ms = _models(tmp_path, x=X, y=Y)
    out = _merge(tmp_path, _slerp(ms, 0.3))
    torch.testing.assert_close(out, T(_slerp_by_hand(X, Y, 0.3)), rtol=0, atol=1e-6)
    # the angle of the last chunk alone (x = 2, y = -2: opposite) would give other numbers
    assert not torch.allclose(out, T(_slerp_by_hand(X, Y, 0.3)[:6] + [0.0]), atol=1e-3)


def test_slerp_in_bfloat16_computes_in_float32(tmp_path):
    x, y = [256.0, 3.0, 1.0, 5.0], [-4.0, 7.0, 2.0, 1.0]
    ms = _models(tmp_path, torch.bfloat16, x=x, y=y)
    out = _merge(tmp_path, _slerp(ms, 0.5))
    # computed in float32 from the bfloat16 inputs and rounded once to bfloat16: 244, not the 243 of
    # products and sum each rounded to bfloat16
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, T([244.0, 9.6875, 2.90625, 5.8125], dtype=torch.bfloat16))
    assert torch.equal(out, T(_slerp_by_hand(x, y, 0.5)).to(torch.bfloat16))
    wide = _merge(tmp_path, _slerp(ms, 0.5), "wide", out_dtype="float64")
    assert wide.dtype == torch.float64


def test_slerp_names_the_model_holding_a_nan_in_a_later_chunk(tmp_path):
    ms = _models(tmp_path, x=X, y=Y[:4] + [float("nan")] + Y[5:])
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _slerp(ms, 0.5))
    assert str(info.value) == f"model {ms['y']}: tensor 'w' contains NaN (first at flat index 4)"
