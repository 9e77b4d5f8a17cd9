"""Linear and SLERP kernels with an explicit half-precision compute dtype, in float64, refusing NaN/Inf and
overflow with the right message at the right time, and streaming through a fixed set of chunk buffers.

Tensors of 5 or 7 entries streamed in chunks of 3 (see test_kernels_chunked). With ``dtype: float16`` (or
bfloat16) the inputs are read in that dtype, the arithmetic is float32 and each result chunk is rounded to
the compute dtype before it is written in the out dtype.
"""

import pytest
import torch

from asr_analogy.errors import MergeError
from asr_analogy.merge.stream import Streamer

from .test_kernels_chunked import T, X, Y, _linear, _merge, _models, _slerp, _slerp_by_hand

NAN, INF = float("nan"), float("inf")


def test_linear_in_float16_rounds_each_sum_to_float16_then_writes_the_out_dtype(tmp_path):
    # float16 has 11 significant bits: 2048 + 1 = 2049 lies halfway between 2048 and 2050 and rounds to 2048
    ms = _models(tmp_path, x=[2048.0, 1.0, 3.0, 0.5, 4.0, -1.0, 2048.0], y=[1.0] * 7)
    out = _merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False), dtype="float16", out_dtype="float32")
    assert out.dtype == torch.float32 and torch.equal(out, T([2048.0, 2.0, 4.0, 1.5, 5.0, 0.0, 2048.0]))


def test_linear_in_float16_refuses_a_sum_past_the_float16_range(tmp_path):
    ms = _models(tmp_path, x=[1.0, 1.0, 1.0, 40000.0], y=[1.0, 1.0, 1.0, 30000.0])  # 70000 > 65504
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False), dtype="float16")
    assert str(info.value) == "tensor 'w': merged values overflow torch.float16 (inputs are finite)"
    assert not (tmp_path / "out").exists()


def test_linear_overflow_in_a_chunk_is_not_blamed_on_a_nan_in_a_later_chunk(tmp_path):
    # chunk [0:3] overflows float32 (3e38 + 3e38) from finite inputs; y's NaN at 4 is in the next chunk
    ms = _models(tmp_path, x=[3e38, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], y=[3e38, 1.0, 1.0, 1.0, NAN, 1.0, 1.0])
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False))
    assert str(info.value) == "tensor 'w': merged values overflow torch.float32 (inputs are finite)"


def test_slerp_in_float64_keeps_float64_precision(tmp_path):
    # 0.1, 0.3, ... are not float32 numbers: a pass in float32 is off by about 1e-8 relative
    x, y = [0.1, -0.2, 0.3, 0.05, 0.4, -0.1, 0.2], [0.2, 0.1, -0.1, 0.05, 0.3, 0.2, -0.2]
    ms = _models(tmp_path, torch.float64, x=x, y=y)
    out = _merge(tmp_path, _slerp(ms, 0.3))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, T(_slerp_by_hand(x, y, 0.3), dtype=torch.float64), rtol=1e-13, atol=0)


def test_slerp_in_bfloat16_reads_rounded_inputs_computes_in_float32_and_rounds_once(tmp_path):
    x, y = [206.7, 154.8, -47.7, -144.6, 6.8, -57.0, 170.3], [-118.0, -14.0, 50.0, 244.9, 2.8, -130.9, 153.5]
    ms = _models(tmp_path, x=x, y=y)
    out = _merge(tmp_path, _slerp(ms, 0.3), dtype="bfloat16", out_dtype="float32")
    # the inputs rounded to bfloat16, the angle and the sum in float32, the result rounded to bfloat16 once
    xb, yb = (T(v).to(torch.bfloat16).tolist() for v in (x, y))
    want = T(_slerp_by_hand(xb, yb, 0.3)).to(torch.bfloat16).float()
    assert out.dtype == torch.float32 and torch.equal(out, want)
    assert torch.equal(out, T([142.0, 146.0, -20.375, -11.4375, 8.25, -127.5, 252.0]))


def test_slerp_in_float16_refuses_a_result_past_the_float16_range(tmp_path):
    # nearly opposite vectors (cos = -0.9982) of norm ~80000: the halfway point puts the whole norm on the
    # last entry, 80000 > 65504, though every input entry fits float16
    a, b = 40000.0, 2400.0
    ms = _models(tmp_path, x=[a, a, a, a, b], y=[-a, -a, -a, -a, b])
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _slerp(ms, 0.5), dtype="float16")
    assert str(info.value) == "tensor 'w': merged values overflow torch.float16 (inputs are finite)"


def _emitted(monkeypatch) -> list:
    """The chunks kernels hand to the writer, counted."""
    seen, emit = [], Streamer.emit
    monkeypatch.setattr(Streamer, "emit", lambda self, x, *a, **k: seen.append(x.numel()) or emit(self, x, *a, **k))
    return seen


@pytest.mark.parametrize("x_bad, y_bad, who, kind", [
    (None, (4, NAN), "y", "NaN"),
    ((4, NAN), (5, NAN), "x", "NaN"),  # every sum of the first pass is NaN
    ((4, INF), (4, INF), "x", "Inf"),  # every sum of the first pass is +Inf
])
def test_slerp_refuses_a_nonfinite_input_before_writing_any_chunk(tmp_path, monkeypatch, x_bad, y_bad, who, kind):
    x, y = list(X), list(Y)
    for values, bad in ((x, x_bad), (y, y_bad)):
        if bad:
            values[bad[0]] = bad[1]
    ms = _models(tmp_path, x=x, y=y)
    emitted = _emitted(monkeypatch)
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _slerp(ms, 0.5))
    assert str(info.value) == f"model {ms[who]}: tensor 'w' contains {kind} (first at flat index 4)"
    assert emitted == []  # the first pass found it: no chunk of the tensor was produced


def test_slerp_names_the_first_chunk_holding_a_nan_not_the_first_model(tmp_path):
    # x holds a NaN at 6 (chunk [6:7]), y at 4 (chunk [3:6]): the earlier chunk is reported
    ms = _models(tmp_path, x=X[:6] + [NAN], y=Y[:4] + [NAN] + Y[5:])
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _slerp(ms, 0.5))
    assert str(info.value) == f"model {ms['y']}: tensor 'w' contains NaN (first at flat index 4)"


def _load_buffers(monkeypatch) -> dict:
    """{input path: set of the data pointers its chunks were read into}."""
    seen, load = {}, Streamer.load

    def spy(self, inp, *args, **kw):
        x = load(self, inp, *args, **kw)
        seen.setdefault(inp.path, set()).add(x.data_ptr())
        return x

    monkeypatch.setattr(Streamer, "load", spy)
    return seen


@pytest.mark.parametrize("n_models", [2, 4])
def test_linear_reads_every_model_into_one_shared_buffer(tmp_path, monkeypatch, n_models):
    ms = _models(tmp_path, **{f"m{i}": [float(i + j) for j in range(7)] for i in range(n_models)})
    seen = _load_buffers(monkeypatch)
    out = _merge(tmp_path, _linear(ms, {k: 1.0 for k in ms}, normalize=False))
    assert torch.equal(out, T([float(sum(range(n_models)) + n_models * j) for j in range(7)]))
    assert len(seen) == n_models and len(set().union(*seen.values())) == 1  # memory: one chunk, any number of models


def test_slerp_reads_each_model_into_one_buffer_over_both_passes(tmp_path, monkeypatch):
    ms = _models(tmp_path, x=X, y=Y)
    seen = _load_buffers(monkeypatch)
    _merge(tmp_path, _slerp(ms, 0.3))
    assert [len(seen[ms[k]]) for k in ("x", "y")] == [1, 1] and seen[ms["x"]] != seen[ms["y"]]


def test_float16_models_whose_float32_sum_overflows_float16_are_refused(tmp_path):
    # stored float16, no compute dtype: summed in float32, written back as float16; 40000 + 30000 = 70000 > 65504
    ms = _models(tmp_path, torch.float16, x=[1.0, 1.0, 1.0, 40000.0], y=[1.0, 1.0, 1.0, 30000.0])
    with pytest.raises(MergeError) as info:
        _merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False))
    assert str(info.value) == "tensor 'w': merged values overflow torch.float16 (inputs are finite)"
    assert not (tmp_path / "out").exists()
    ms = _models(tmp_path, torch.float16, x=[1.0, 1.0, 1.0, 40000.0], y=[1.0, 1.0, 1.0, 20000.0])  # 60000 fits
    assert torch.equal(_merge(tmp_path, _linear(ms, {"x": 1.0, "y": 1.0}, normalize=False)),
                       T([2.0, 2.0, 2.0, 60000.0], dtype=torch.float16))
