"""The safetensors format by hand: files built byte by byte, the parsed header, and every refusal word for word;
index JSON and the text encoding of index and config files; what save_checkpoint passes on."""

import io
import json
import struct

import pytest
import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.io.checkpoint import (
    CheckpointReader,
    StoredTensor,
    dtype_name,
    read_safetensors_header,
    save_checkpoint,
    set_config_dtype,
)
from asr_analogy.io.checkpoint.format import index_json


def _write(path, header, data=b"", *, length=None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def _refusal(path):
    with pytest.raises(CheckpointError) as err:
        read_safetensors_header(path)
    return str(err.value)


W = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def test_a_parsed_header(tmp_path):
    raw = json.dumps({"__metadata__": {"k": "v"}, "w": W}).encode()
    p = _write(tmp_path / "m.safetensors", raw, struct.pack("<2f", 1.0, 2.0))
    header = read_safetensors_header(p)
    assert header.tensors == {"w": StoredTensor("w", torch.float32, (2,), 8 + len(raw))}
    assert header.metadata == {"k": "v"}
    assert header.size == 8 + len(raw) + 8


def test_a_dtype_safetensors_cannot_store():
    with pytest.raises(CheckpointError) as err:
        dtype_name(torch.complex64)
    assert str(err.value) == "dtype torch.complex64 cannot be stored in safetensors"


def test_a_missing_file(tmp_path):
    assert _refusal(tmp_path / "none.safetensors") == f"{tmp_path / 'none.safetensors'}: file does not exist"


def test_a_header_length_past_the_end_of_the_file(tmp_path):
    p = _write(tmp_path / "m.safetensors", b"{}", length=2**64 - 1)  # the top bit set: unsigned
    assert _refusal(p) == f"{p}: corrupt or truncated safetensors file (header claims {2**64 - 1} bytes, file has 10)"
    p = _write(tmp_path / "m.safetensors", b"{}" + b" " * 8, length=12)  # 10 bytes follow the length
    assert _refusal(p) == f"{p}: corrupt or truncated safetensors file (header claims 12 bytes, file has 18)"


def test_a_header_that_is_not_an_object(tmp_path):
    p = _write(tmp_path / "m.safetensors", b"[1, 2]  ")
    assert _refusal(p) == f"{p}: corrupt safetensors header (not a JSON object)"


def test_a_malformed_entry(tmp_path):
    p = _write(tmp_path / "m.safetensors", {"w": {"dtype": "F32"}})
    assert _refusal(p) == f"{p}: tensor 'w' has a malformed header entry {{'dtype': 'F32'}}"


def test_a_byte_range_that_does_not_match_the_shape(tmp_path):
    p = _write(tmp_path / "m.safetensors", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4)
    assert _refusal(p) == f"{p}: tensor 'w': byte range 0..4 does not match shape [2] and dtype F32"


def test_a_gap_between_tensors(tmp_path):
    b = {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}
    p = _write(tmp_path / "m.safetensors", {"a": W, "b": b}, b"\0" * 20)
    assert _refusal(p) == f"{p}: tensor 'b' starts at byte 12, expected 8 (corrupt header)"


def test_data_shorter_or_longer_than_the_header_says(tmp_path):
    raw = json.dumps({"w": W}).encode()
    p = _write(tmp_path / "m.safetensors", raw, b"\0" * 5)
    assert _refusal(p) == (
        f"{p}: truncated safetensors file: header describes {8 + len(raw) + 8} bytes, file has {8 + len(raw) + 5}"
    )
    p = _write(tmp_path / "m.safetensors", raw, b"\0" * 12)
    assert _refusal(p) == f"{p}: 4 unexpected bytes after the last tensor"


def test_an_index_that_is_not_an_index(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError) as err:
        CheckpointReader(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'model.safetensors.index.json'}: not a valid index (expected JSON with a 'weight_map' object)"
    )


def test_index_json_lists_names_in_natural_order():
    content = index_json({"l.10": "a.safetensors", "l.2": "b.safetensors"}, 24)
    assert list(content["weight_map"]) == ["l.2", "l.10"]
    assert content == {"metadata": {"total_size": 24}, "weight_map": {"l.2": "b.safetensors", "l.10": "a.safetensors"}}


def test_index_and_config_are_read_as_utf8_whatever_the_locale(tmp_path, monkeypatch):
    # names and config values outside ASCII, read where text files default to ASCII (as under LC_ALL=C)
    out = save_checkpoint({"gewicht.\u00e4": torch.zeros(2), "w": torch.zeros(2)}, tmp_path / "m", shard_size=8)
    index = out / "model.safetensors.index.json"
    index.write_text(json.dumps(json.loads(index.read_text()), ensure_ascii=False), encoding="utf-8")  # raw UTF-8
    (out / "config.json").write_text('{"name": "\u00e4", "torch_dtype": "float32"}', encoding="utf-8")
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "ascii")
    with CheckpointReader(out) as r:
        assert r.names() == ["gewicht.\u00e4", "w"]
    set_config_dtype(out, torch.bfloat16)
    assert json.loads((out / "config.json").read_text(encoding="utf-8")) == {"name": "\u00e4", "torch_dtype": "bfloat16"}


def test_save_checkpoint_records_metadata(tmp_path):
    out = save_checkpoint({"w": torch.zeros(2)}, tmp_path / "m", metadata={"source": "test"})
    with CheckpointReader(out) as r:
        assert r.metadata() == {"format": "pt", "source": "test"}


def test_iterator_input_leaves_the_config_dtype_alone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text('{"torch_dtype": "float32"}')
    out = save_checkpoint(iter([("w", torch.zeros(2, dtype=torch.bfloat16))]), tmp_path / "m", copy_files_from=src)
    assert json.loads((out / "config.json").read_text()) == {"torch_dtype": "float32"}


def test_iterator_input_starts_each_shard_from_zero_bytes(tmp_path):
    # four 8-byte tensors, 16-byte shards: two per shard
    items = iter([(n, torch.zeros(2)) for n in "abcd"])
    out = save_checkpoint(items, tmp_path / "m", shard_size=16)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {
        "a": "model-00001-of-00002.safetensors",
        "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors",
        "d": "model-00002-of-00002.safetensors",
    }
