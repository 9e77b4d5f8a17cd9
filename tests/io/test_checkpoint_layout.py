"""Byte layout of written checkpoints: the 8-byte aligned data offset and shards that exactly fill
``shard_size``. Expected bytes and file lists are written out by hand."""

import json
import struct

import pytest
import torch

from asr_analogy.io.checkpoint import CheckpointReader, save_checkpoint

# The header of a one-tensor file: JSON without spaces, ``__metadata__`` first (the writer adds format=pt).
HEADER = '{"__metadata__":{"format":"pt"},"NAME":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'


@pytest.mark.parametrize(
    "name,padding",
    [
        ("w", 3),  # 85 bytes of JSON -> 3 spaces -> 88
        ("wx", 2),  # 86 -> 88
        ("wxy", 1),  # 87 -> 88
        ("wxyz", 0),  # 88 already aligned
        ("a.b.c", 7),  # 89 -> 96
    ],
)
def test_header_is_space_padded_so_data_starts_8_byte_aligned(tmp_path, name, padding):
    t = torch.tensor([1.5, -2.0])
    save_checkpoint({name: t}, tmp_path / "m")
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    header = HEADER.replace("NAME", name).encode()
    n = len(header) + padding
    assert n % 8 == 0
    assert raw[:8] == struct.pack("<Q", n)  # little-endian u64 header length
    assert raw[8 : 8 + n] == header + b" " * padding
    assert raw[8 + n :] == struct.pack("<2f", 1.5, -2.0)  # the data, at an offset that is a multiple of 8
    with CheckpointReader(tmp_path / "m") as r:
        assert r.get(name).tolist() == [1.5, -2.0]


def _eight_byte_tensors():
    # three float32 tensors of 2 entries: 8 bytes each
    return {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0, 4.0]), "c": torch.tensor([5.0, 6.0])}


@pytest.mark.parametrize("as_iterator", [False, True], ids=["mapping", "iterator"])
def test_tensors_that_exactly_fill_a_shard_share_it(tmp_path, as_iterator):
    tensors = _eight_byte_tensors()
    given = iter(tensors.items()) if as_iterator else tensors
    # 8 + 8 = 16 bytes fill a 16-byte shard exactly: a and b together, c in a second shard
    out = save_checkpoint(given, tmp_path / "m", shard_size=16)
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert files == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 24
    assert index["weight_map"] == {
        "a": "model-00001-of-00002.safetensors",
        "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors",
    }
    with CheckpointReader(out) as r:
        assert {n: r.get(n).tolist() for n in r.names()} == {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]}


@pytest.mark.parametrize("as_iterator", [False, True], ids=["mapping", "iterator"])
def test_tensors_that_exactly_fill_the_limit_stay_one_file(tmp_path, as_iterator):
    tensors = _eight_byte_tensors()
    given = iter(tensors.items()) if as_iterator else tensors
    out = save_checkpoint(given, tmp_path / "m", shard_size=24)  # 3 x 8 = 24: no split
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
