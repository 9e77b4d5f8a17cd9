"""The generalized task-arithmetic kernel over several chunks: output chunks stay intact while a slow writer
catches up (as far as the streamer allows); hand values.

A tensor of 7 entries streamed in chunks of 2 is read as [0:2], [2:4], [4:6], [6:7].
"""

import collections
import warnings

import pytest
import torch

from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import merge, stream, vector

from .conftest import write_model

T = torch.tensor
BASE = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
DA = [1.0, -2.0, 0.5, 4.0, -1.0, 2.0, 3.0]
DB = [-3.0, 1.0, 2.0, -2.0, 4.0, 1.0, -1.0]


def _plus(base, delta):
    return [x + d for x, d in zip(base, delta)]


@pytest.fixture
def lagging_writer(monkeypatch):
    """A writer that falls behind by RING - 1 chunks, the most the streamer allows: each chunk is written
    only after the next RING - 1 were produced. Warnings (e.g. torch resizing a wrongly sized output) fail."""

    def write_late(items, write):
        held = collections.deque()
        for item in items:
            held.append(item)
            if len(held) == stream.RING:
                write(*held.popleft())
        while held:
            write(*held.popleft())

    monkeypatch.setattr(stream, "write_in_background", write_late)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _models(tmp_path):
    return {"base": write_model(tmp_path / "base", {"w": T(BASE)}),
            "a": write_model(tmp_path / "a", {"w": T(_plus(BASE, DA))}),
            "b": write_model(tmp_path / "b", {"w": T(_plus(BASE, DB))})}


def _ta(ms, **top):
    return {"merge_method": "task_arithmetic", "base_model": str(ms["base"]),
            "models": [{"model": str(ms[k])} for k in ("a", "b")], **top}


@pytest.mark.parametrize("out_dtype", [None, "float16"])
def test_chunks_stay_intact_while_the_writer_lags(tmp_path, lagging_writer, out_dtype):
    ms = _models(tmp_path)
    out = load_state_dict(merge(_ta(ms), tmp_path / "out", progress=False, chunk_elements=2, out_dtype=out_dtype))
    # base + a's delta + b's delta
    expected = T([-1.0, 1.0, 5.5, 6.0, 8.0, 9.0, 9.0], dtype=torch.float16 if out_dtype else torch.float32)
    assert torch.equal(out["w"], expected)


def test_a_merge_of_task_vectors_stays_intact_while_the_writer_lags(tmp_path, lagging_writer):
    ms = _models(tmp_path)
    va = vector(ms["a"], ms["base"], tmp_path / "va.safetensors", progress=False)
    vb = vector(ms["b"], ms["base"], tmp_path / "vb.safetensors", progress=False)
    cfg = {"merge_method": "task_arithmetic", "parameters": {"lambda": 0.5},
           "models": [{"vector": str(va)}, {"vector": str(vb)}]}
    out = load_state_dict(merge(cfg, tmp_path / "mixed", progress=False, chunk_elements=2))
    # 0.5 * (a's delta + b's delta): a task vector, no base added
    assert torch.equal(out["w"], T([-1.0, -0.5, 1.25, 1.0, 1.5, 1.5, 1.0]))



def test_a_merge_whose_only_model_is_the_base_writes_the_base(tmp_path, lagging_writer):
    # the base is no term of its own merge: no delta at all, every chunk is the base's
    ms = _models(tmp_path)
    cfg = {"merge_method": "task_arithmetic", "base_model": str(ms["base"]), "models": [{"model": str(ms["base"])}]}
    out = load_state_dict(merge(cfg, tmp_path / "out", progress=False, chunk_elements=2))
    assert torch.equal(out["w"], T(BASE))
