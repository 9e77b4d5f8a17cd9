"""PyTorch (pickle) checkpoints through the lazy reader: how torch.load is asked, legacy files, sharded .bin
indexes, refusals word for word, chunked reads."""

import json

import pytest
import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.io.checkpoint import CheckpointReader


class Payload:
    """Stands for an arbitrary pickled object."""


@pytest.fixture
def load_calls(monkeypatch):
    """The keyword arguments of every torch.load call (the real torch.load still loads)."""
    calls = []
    real = torch.load

    def spy(file, **kw):
        calls.append(kw)
        return real(file, **kw)

    monkeypatch.setattr(torch, "load", spy)
    return calls


def test_torch_load_is_asked_for_cpu_weights_memory_mapped(tmp_path, load_calls):
    torch.save({"w": torch.arange(3.0)}, tmp_path / "pytorch_model.bin")
    with CheckpointReader(tmp_path) as r:
        assert torch.equal(r.get("w"), torch.arange(3.0))
    assert load_calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_legacy_torch_files_are_read_without_mmap(tmp_path, load_calls):
    torch.save({"w": torch.arange(4.0)}, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    with CheckpointReader(tmp_path) as r:
        assert torch.equal(r.get("w"), torch.arange(4.0))
    assert load_calls[-1] == {"map_location": "cpu", "weights_only": True}


def test_legacy_files_with_pickled_objects_are_refused(tmp_path):
    torch.save({"w": torch.zeros(1), "obj": Payload()}, tmp_path / "pytorch_model.bin",
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"cannot read with torch.load\(weights_only=True\)"):
        CheckpointReader(tmp_path)


@pytest.mark.parametrize("obj,message", [
    ([torch.zeros(1)], "expected a mapping of tensor names to tensors, got list"),
    ({"w": torch.zeros(1), "n": 3}, "entry 'n' is a int, not a tensor"),
])
def test_torch_files_that_are_no_state_dict(tmp_path, obj, message):
    torch.save(obj, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as info:
        CheckpointReader(tmp_path)
    assert str(info.value) == f"{tmp_path / 'pytorch_model.bin'}: {message}"


def test_sharded_torch_index(tmp_path):
    torch.save({"a.w": torch.arange(2.0)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    torch.save({"b.w": torch.arange(3.0), "c.w": torch.ones(1)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    index = {"weight_map": {"a.w": "pytorch_model-00002-of-00002.bin", "b.w": "pytorch_model-00001-of-00002.bin",
                            "c.w": "pytorch_model-00001-of-00002.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with CheckpointReader(tmp_path) as r:
        assert r.names() == ["a.w", "b.w", "c.w"]
        assert torch.equal(r.get("a.w"), torch.arange(2.0)) and torch.equal(r.get("b.w"), torch.arange(3.0))
        assert [p.name for p in r._files] == ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
        out = torch.empty(2)
        assert torch.equal(r.read_into("b.w", 1, 3, out), torch.tensor([1.0, 2.0]))
        assert r.read_into("b.w", 2, 2, torch.empty(0)).numel() == 0
    index["weight_map"]["d.w"] = "pytorch_model-00001-of-00002.bin"
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as info:
        CheckpointReader(tmp_path)
    assert str(info.value) == f"{tmp_path / 'pytorch_model.bin.index.json'}: tensor 'd.w' is listed but not stored"


def test_a_tensor_in_two_torch_files_is_refused(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"w": torch.ones(1)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    index = {"weight_map": {"w": "pytorch_model-00001-of-00002.bin", "x": "pytorch_model-00002-of-00002.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as info:
        CheckpointReader(tmp_path)
    assert str(info.value) == f"{tmp_path / 'pytorch_model-00002-of-00002.bin'}: tensor 'w' appears in more than one file"


@pytest.mark.parametrize("out", [torch.empty(3), torch.empty(2, dtype=torch.float64), torch.empty(4)[::2]])
def test_read_into_refuses_a_wrong_buffer(tmp_path, out):
    torch.save({"w": torch.arange(4.0)}, tmp_path / "pytorch_model.bin")
    with CheckpointReader(tmp_path) as r:
        with pytest.raises(CheckpointError) as info:
            r.read_into("w", 0, 2, out)
    assert str(info.value) == f"read_into('w'): buffer of {out.numel()} {out.dtype}, need 2 torch.float32"


def test_read_into_of_one_entry(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.arange(4.0)}, tmp_path / "model.safetensors")
    with CheckpointReader(tmp_path) as r:
        assert torch.equal(r.read_into("w", 2, 3, torch.empty(1)), torch.tensor([2.0]))
