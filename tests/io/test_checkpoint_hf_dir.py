"""Model directories: side files copied (never weights), the config dtype rewritten, iterator input buffered
into shards with metadata, the empty checkpoint, and single safetensors files: hand values."""

import json

import pytest
import torch

from asr_analogy.errors import CheckpointError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader, save_checkpoint
from asr_analogy.io.checkpoint.hf_dir import copy_model_files, set_config_dtype
from asr_analogy.io.checkpoint.reader import fingerprint_mismatch


def test_copy_model_files_copies_side_files_only(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    names = ["config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
             "optimizer.pt", "rng.pth", "notes.txt"]
    for n in names:
        (src / n).write_text(n)
    (src / "sub.json").mkdir()  # a folder is never copied
    copied = copy_model_files(src, dst, patterns=("*.json", "*.bin", "*.pt", "*.pth", "*.safetensors"))
    assert copied == ["config.json", "tokenizer.json"]
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "tokenizer.json"]
    assert (dst / "config.json").read_text() == "config.json"
    assert copy_model_files(src / "config.json", dst) == []  # a file, not a folder


def test_set_config_dtype_rewrites_both_keys_indented(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"torch_dtype": "float32", "dtype": "float32", "n": 1}))
    set_config_dtype(tmp_path, torch.bfloat16)
    assert cfg.read_text() == json.dumps({"torch_dtype": "bfloat16", "dtype": "bfloat16", "n": 1}, indent=2) + "\n"
    only = {"dtype": "float16"}
    cfg.write_text(json.dumps(only))
    set_config_dtype(tmp_path, torch.float32)
    assert json.loads(cfg.read_text()) == {"dtype": "float32"}
    cfg.write_text('{"torch_dtype": "float32"}')  # already right: the file is left as it was
    set_config_dtype(tmp_path, torch.float32)
    assert cfg.read_text() == '{"torch_dtype": "float32"}'
    cfg.write_text('{"model_type": "x"}')  # no dtype key: nothing added
    set_config_dtype(tmp_path, torch.float64)
    assert cfg.read_text() == '{"model_type": "x"}'


def test_iterator_input_is_buffered_into_shards_with_metadata(tmp_path):
    items = [("a", torch.zeros(4)), ("b", torch.ones(4)), ("c", torch.full((2,), 2.0))]  # 16 + 16 + 8 bytes
    out = save_checkpoint(iter(items), tmp_path / "out", shard_size=20, metadata={"k": "v"})
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    assert shards == ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                      "model-00003-of-00003.safetensors"]
    with CheckpointReader(out) as r:
        assert r.names() == ["a", "b", "c"] and torch.equal(r.get("c"), torch.full((2,), 2.0))
    with CheckpointReader(out / shards[0]) as r:
        assert r.metadata() == {"format": "pt", "k": "v"}
    # 16 + 16 bytes fit one 32-byte shard exactly; c starts the next
    out = save_checkpoint(iter(items), tmp_path / "exact", shard_size=32)
    assert len(list(out.glob("model-*.safetensors"))) == 2


def test_an_empty_iterator_writes_one_empty_file_with_metadata(tmp_path):
    out = save_checkpoint(iter([]), tmp_path / "out", metadata={"k": "v"})
    assert [p.name for p in out.iterdir()] == ["model.safetensors"]
    with CheckpointReader(out) as r:
        assert r.names() == [] and r.metadata() == {"format": "pt", "k": "v"}


def test_a_name_given_twice_is_refused(tmp_path):
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(iter([("a", torch.zeros(1)), ("b", torch.zeros(1)), ("a", torch.ones(1))]), tmp_path / "o")
    assert str(info.value) == "tensor 'a' given twice"
    assert not (tmp_path / "o").exists()


def test_fingerprint_mismatch_words():
    assert fingerprint_mismatch("s2:abc", "s2:abc") is None
    assert fingerprint_mismatch("s2:abc", "s2:def") == "fingerprint s2:abc differs from s2:def: the weights are not the same"
    assert fingerprint_mismatch("old:a:b", "s2:c") == (
        "fingerprint old:a:b was made with scheme 'old' (unknown) and cannot be compared with s2:c (scheme 's2'); "
        "recompute it with this version")
    assert fingerprint_mismatch("abc", "s2:c").startswith("fingerprint abc was made with scheme '?' (unknown)")


def test_single_safetensors_file_refuses_to_replace_unless_forced(tmp_path):
    from asr_analogy.io.checkpoint import TensorSpec, write_safetensors_file

    spec = [TensorSpec("w", torch.float32, (2,))]
    path = write_safetensors_file(tmp_path / "v.safetensors", spec, [("w", torch.ones(2))], metadata={"m": "1"})
    with CheckpointReader(path) as r:
        assert r.metadata() == {"format": "pt", "m": "1"}
    with pytest.raises(OutputExistsError) as info:
        write_safetensors_file(path, spec, [("w", torch.zeros(2))])
    assert "already exists; pass --force to replace it" in str(info.value)
    write_safetensors_file(path, spec, [("w", torch.zeros(2))], force=True)
    with CheckpointReader(path) as r:
        assert torch.equal(r.get("w"), torch.zeros(2)) and r.metadata() == {"format": "pt"}
    with pytest.raises(CheckpointError, match="'w'"):
        write_safetensors_file(tmp_path / "short.safetensors", spec, [])
