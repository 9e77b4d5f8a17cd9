"""Lazy checkpoint reader, streaming sharded writer, fingerprint, and their error messages."""

import hashlib
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.errors import CheckpointError, OutputExistsError
from asr_analogy.io.checkpoint import (
    CheckpointReader,
    ShardedWriter,
    TensorSpec,
    copy_model_files,
    fingerprint_mismatch,
    load_state_dict,
    parse_size,
    save_checkpoint,
)


def _state():
    gen = torch.Generator().manual_seed(0)
    return {
        "model.layers.10.w": torch.randn(30, 20, generator=gen),
        "model.layers.2.w": torch.randn(30, 20, generator=gen).to(torch.bfloat16),
        "model.embed.weight": torch.randn(50, 8, generator=gen, dtype=torch.float64),
        "model.steps": torch.tensor(7),  # 0-dim integer buffer
        "model.mask": torch.tensor([True, False, True]),
        "model.empty": torch.zeros(0, 4),
    }


@pytest.mark.parametrize("value,expected", [("5GB", 5 * 10**9), ("500MB", 500 * 10**6), ("2GiB", 2 * 2**30),
                                            ("1.5kb", 1500), (4096, 4096), ("100", 100), (None, None)])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


def test_parse_size_rejects_nonsense():
    with pytest.raises(CheckpointError, match="shard size"):
        parse_size("big")


def test_sharded_round_trip_with_index_and_natural_order(tmp_path):
    state = _state()
    out = save_checkpoint(state, tmp_path / "out", shard_size="3KB")
    files = sorted(p.name for p in out.iterdir())
    shards = [f for f in files if f.endswith(".safetensors")]
    assert len(shards) > 1 and "model.safetensors.index.json" in files
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(state)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in state.values())
    with CheckpointReader(out) as reader:
        assert reader.names()[:3] == ["model.embed.weight", "model.empty", "model.layers.2.w"]
        assert reader.names().index("model.layers.2.w") < reader.names().index("model.layers.10.w")
        for name, tensor in state.items():
            assert reader.shape(name) == tuple(tensor.shape)
            assert reader.dtype(name) == tensor.dtype
            assert torch.equal(reader.get(name), tensor)
        chunk = torch.empty(100, dtype=torch.float32)
        reader.read_into("model.layers.10.w", 50, 150, chunk)
        assert torch.equal(chunk, state["model.layers.10.w"].reshape(-1)[50:150])


def test_single_file_directory_and_file_path_and_iterator_input(tmp_path):
    state = _state()
    out = save_checkpoint(iter(state.items()), tmp_path / "one", shard_size=None)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    loaded = load_state_dict(out / "model.safetensors")
    assert all(torch.equal(loaded[n], t) for n, t in state.items())
    # iterator input, small shards: buffered one shard at a time, then indexed
    out2 = save_checkpoint(iter(state.items()), tmp_path / "many", shard_size="3KB")
    assert (out2 / "model.safetensors.index.json").is_file()
    assert all(torch.equal(load_state_dict(out2)[n], t) for n, t in state.items())


def test_writer_streams_chunks_in_planned_order(tmp_path):
    specs = [TensorSpec("b", torch.float32, (4,)), TensorSpec("a", torch.float32, (2, 3))]
    writer = ShardedWriter(tmp_path, specs, shard_size=None, fsync=False)
    assert writer.order == ["a", "b"]
    writer.write("a", torch.arange(4.0))  # a tensor may arrive in several chunks
    writer.write("a", torch.tensor([4.0, 5.0]))
    with pytest.raises(CheckpointError, match="out of order"):
        writer.write("a", torch.zeros(1))
    writer.write("b", torch.ones(4))
    writer.close()
    state = load_state_dict(tmp_path)
    assert torch.equal(state["a"], torch.arange(6.0).reshape(2, 3))
    assert torch.equal(state["b"], torch.ones(4))


def test_writer_refuses_a_chunk_larger_than_the_tensor(tmp_path):
    writer = ShardedWriter(tmp_path, [TensorSpec("a", torch.float32, (2,))], fsync=False)
    with pytest.raises(CheckpointError, match="more data"):
        writer.write("a", torch.zeros(3))


def test_pytorch_bin_is_read_with_weights_only(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor([1, 2])}
    torch.save(state, tmp_path / "pytorch_model.bin")
    with CheckpointReader(tmp_path) as reader:
        assert reader.names() == ["n", "w"]
        assert torch.equal(reader.get("w"), state["w"])


class Payload:
    """Stands for an arbitrary pickled object: weights_only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"w": torch.zeros(1), "obj": Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only"):
        CheckpointReader(tmp_path)


def test_fingerprint_is_layout_independent_and_sees_changes(tmp_path):
    state = _state()
    single = save_checkpoint(state, tmp_path / "single", shard_size=None)
    sharded = save_checkpoint(state, tmp_path / "sharded", shard_size="3KB")
    torch.save(state, tmp_path / "pytorch_model.bin")
    fps = {CheckpointReader(p).fingerprint() for p in (single, sharded, tmp_path / "pytorch_model.bin")}
    assert len(fps) == 1 and fps.pop().startswith("sha256-full:")
    changed = dict(state)
    changed["model.layers.10.w"] = state["model.layers.10.w"].clone()
    changed["model.layers.10.w"][-1, -1] += 1.0
    other = save_checkpoint(changed, tmp_path / "other")
    assert CheckpointReader(other).fingerprint() != CheckpointReader(single).fingerprint()


def test_fingerprint_hashes_every_byte(tmp_path):
    # 64 x 64 float32 = 16 KiB: the middle element lies outside the first and last 4 KiB.
    w = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64)
    base = save_checkpoint({"w": w}, tmp_path / "base")
    expected = hashlib.sha256(b"w\0F32\x0064,64\0" + w.numpy().tobytes()).hexdigest()
    assert CheckpointReader(base).fingerprint() == f"sha256-full:{expected}"
    edited = w.clone()
    edited[32, 0] += 1.0  # byte 8192: the middle of the tensor
    other = save_checkpoint({"w": edited}, tmp_path / "edited")
    assert CheckpointReader(other).fingerprint() != CheckpointReader(base).fingerprint()
    with CheckpointReader(base) as reader:  # chunked reads cover the tensor exactly once, in order
        assert b"".join(bytes(c) for c in reader.raw_chunks("w", chunk_bytes=1000)) == w.numpy().tobytes()


def test_fingerprint_mismatch_names_an_older_scheme():
    assert fingerprint_mismatch("sha256-full:ab", "sha256-full:ab") is None
    assert "the weights are not the same" in fingerprint_mismatch("sha256-full:ab", "sha256-full:cd")
    message = fingerprint_mismatch("sha256:0123", "sha256-full:cd")
    assert "scheme 'sha256'" in message and "first and last 4 KiB" in message and "recompute" in message


def test_truncated_file_names_the_file(tmp_path):
    save_file({"w": torch.zeros(1000)}, tmp_path / "model.safetensors")
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated"):
        CheckpointReader(tmp_path)
    path.write_bytes(b"\x05\x00")
    with pytest.raises(CheckpointError, match="truncated"):
        CheckpointReader(tmp_path)
    path.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}" + b"\0" * 8)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        CheckpointReader(tmp_path)


def test_missing_shard_and_inconsistent_index_name_the_files(tmp_path):
    out = save_checkpoint(_state(), tmp_path / "out", shard_size="3KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    victim = index["weight_map"]["model.layers.2.w"]
    os.unlink(out / victim)
    with pytest.raises(CheckpointError, match=f"{victim}: shard file does not exist"):
        CheckpointReader(out)
    out2 = save_checkpoint(_state(), tmp_path / "out2", shard_size="3KB")
    index = json.loads((out2 / "model.safetensors.index.json").read_text())
    index["weight_map"]["ghost"] = next(iter(index["weight_map"].values()))
    (out2 / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="'ghost'"):
        CheckpointReader(out2)
    with pytest.raises(CheckpointError, match="does not exist"):
        CheckpointReader(tmp_path / "nowhere")


def test_existing_output_is_refused_unless_forced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="already exists"):
        save_checkpoint({"w": torch.zeros(2)}, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    save_checkpoint({"w": torch.zeros(2)}, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]


def test_side_files_are_copied_and_config_dtype_updated(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                 "preprocessor_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                 "added_tokens.json", "normalizer.json", "README.md", "training_args.bin"):
        (src / name).write_text('{"torch_dtype": "float32"}' if name == "config.json" else "{}")
    save_file({"w": torch.zeros(2)}, src / "model.safetensors")
    copied = copy_model_files(src, tmp_path)
    assert "README.md" not in copied and "training_args.bin" not in copied and "model.safetensors" not in copied
    assert {"config.json", "tokenizer.json", "preprocessor_config.json", "normalizer.json", "merges.txt"} <= set(copied)
    out = save_checkpoint({"w": torch.zeros(2, dtype=torch.bfloat16)}, tmp_path / "out", copy_files_from=src)
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
