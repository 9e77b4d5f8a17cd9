"""How the lazy reader finds a checkpoint from a path: which file it opens for each layout, and its refusals
word for word (the messages a user reads)."""

import json

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.errors import CheckpointError
from asr_analogy.io.checkpoint import CheckpointReader, save_checkpoint


def _message(path):
    with pytest.raises(CheckpointError) as err:
        CheckpointReader(path)
    return str(err.value)


def _sharded(directory):
    """Two shards and model.safetensors.index.json: a = [1, 2] and b = [3, 4]."""
    return save_checkpoint({"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0, 4.0])}, directory, shard_size=8)


def _values(reader):
    return {n: reader.get(n).tolist() for n in reader.names()}


def test_an_index_file_given_by_path_opens_its_shards(tmp_path):
    out = _sharded(tmp_path / "m")
    with CheckpointReader(out / "model.safetensors.index.json") as r:
        assert _values(r) == {"a": [1.0, 2.0], "b": [3.0, 4.0]}


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth"])
def test_a_torch_file_given_by_path_is_read_whatever_its_suffix(tmp_path, suffix):
    torch.save({"w": torch.tensor([5.0, 6.0])}, tmp_path / f"weights{suffix}")
    with CheckpointReader(tmp_path / f"weights{suffix}") as r:
        assert _values(r) == {"w": [5.0, 6.0]}
        assert r.metadata() == {}


def test_a_torch_index_given_by_path_opens_its_shards(tmp_path):
    torch.save({"a": torch.tensor([1.0])}, tmp_path / "part-1.bin")
    torch.save({"b": torch.tensor([2.0])}, tmp_path / "part-2.bin")
    index = {"weight_map": {"a": "part-1.bin", "b": "part-2.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with CheckpointReader(tmp_path / "pytorch_model.bin.index.json") as r:
        assert _values(r) == {"a": [1.0], "b": [2.0]}


def test_a_file_of_another_kind_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert _message(tmp_path / "notes.txt") == (
        f"{tmp_path / 'notes.txt'}: not a .safetensors, index.json or pytorch .bin file"
    )


def test_model_safetensors_index_json_wins_over_other_indexes(tmp_path):
    out = _sharded(tmp_path / "m")
    (out / "old.safetensors.index.json").write_text(json.dumps({"weight_map": {"zzz": "gone.safetensors"}}))
    with CheckpointReader(out) as r:
        assert _values(r) == {"a": [1.0, 2.0], "b": [3.0, 4.0]}


def test_model_safetensors_wins_over_other_safetensors_files(tmp_path):
    save_file({"w": torch.tensor([1.0])}, tmp_path / "model.safetensors")
    save_file({"v": torch.tensor([2.0])}, tmp_path / "extra.safetensors")
    with CheckpointReader(tmp_path) as r:
        assert _values(r) == {"w": [1.0]}


def test_the_one_index_of_another_name_is_opened(tmp_path):
    out = _sharded(tmp_path / "m")
    (out / "model.safetensors.index.json").rename(out / "custom.safetensors.index.json")
    with CheckpointReader(out) as r:
        assert _values(r) == {"a": [1.0, 2.0], "b": [3.0, 4.0]}


def test_the_one_safetensors_file_of_another_name_is_opened(tmp_path):
    save_file({"w": torch.tensor([7.0])}, tmp_path / "weights.safetensors")
    with CheckpointReader(tmp_path) as r:
        assert _values(r) == {"w": [7.0]}


def test_several_safetensors_files_without_an_index_are_refused_and_listed(tmp_path):
    save_file({"w": torch.tensor([1.0])}, tmp_path / "b.safetensors")
    save_file({"v": torch.tensor([2.0])}, tmp_path / "a.safetensors")
    assert _message(tmp_path) == (
        f"{tmp_path}: several safetensors files and no model.safetensors.index.json (a.safetensors, b.safetensors)"
    )


def test_several_indexes_are_refused_and_the_indexes_listed(tmp_path):
    out = _sharded(tmp_path / "m")
    (out / "model.safetensors.index.json").rename(out / "one.safetensors.index.json")
    (out / "two.safetensors.index.json").write_text((out / "one.safetensors.index.json").read_text())
    assert _message(out) == (
        f"{out}: several safetensors files and no model.safetensors.index.json "
        "(one.safetensors.index.json, two.safetensors.index.json)"
    )


def test_a_directory_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert _message(tmp_path) == f"{tmp_path}: no model.safetensors, safetensors index or pytorch_model.bin found"


def test_a_folder_named_like_a_safetensors_file_is_not_a_file(tmp_path):
    (tmp_path / "weights.safetensors").mkdir()
    assert _message(tmp_path) == f"{tmp_path / 'weights.safetensors'}: shard file does not exist"


def test_a_missing_shard_names_the_index_that_lists_it(tmp_path):
    out = _sharded(tmp_path / "m")
    (out / "model-00002-of-00002.safetensors").unlink()
    assert _message(out) == (
        f"{out / 'model-00002-of-00002.safetensors'}: shard file does not exist "
        f"(listed in {out / 'model.safetensors.index.json'})"
    )


def test_a_missing_torch_shard_is_named(tmp_path):
    torch.save({"a": torch.tensor([1.0])}, tmp_path / "part-1.bin")
    index = {"weight_map": {"a": "part-1.bin", "b": "part-2.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert _message(tmp_path) == f"{tmp_path / 'part-2.bin'}: file does not exist"


def test_safetensors_shards_open_in_natural_order(tmp_path):
    # the metadata comes from the first shard: part-2 before part-10
    save_file({"a": torch.tensor([1.0])}, tmp_path / "part-2.safetensors", metadata={"shard": "2"})
    save_file({"b": torch.tensor([2.0])}, tmp_path / "part-10.safetensors", metadata={"shard": "10"})
    index = {"weight_map": {"a": "part-2.safetensors", "b": "part-10.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with CheckpointReader(tmp_path) as r:
        assert r.metadata() == {"shard": "2"}
        assert _values(r) == {"a": [1.0], "b": [2.0]}


def test_torch_shards_open_in_natural_order(tmp_path):
    # the same tensor in two shards: the later shard in natural order (part-10) is named
    torch.save({"w": torch.tensor([1.0])}, tmp_path / "part-2.bin")
    torch.save({"w": torch.tensor([2.0])}, tmp_path / "part-10.bin")
    index = {"weight_map": {"w": "part-2.bin", "v": "part-10.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert _message(tmp_path) == f"{tmp_path / 'part-10.bin'}: tensor 'w' appears in more than one file"


def test_a_shard_may_hold_tensors_the_index_places_elsewhere(tmp_path):
    # s1 also stores a stale copy of "a" (listed in s2): it is skipped, and "b" after it still read from s1
    save_file({"a": torch.tensor([9.0]), "b": torch.tensor([2.0])}, tmp_path / "s1.safetensors")
    save_file({"a": torch.tensor([1.0])}, tmp_path / "s2.safetensors")
    index = {"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with CheckpointReader(tmp_path) as r:
        assert _values(r) == {"a": [1.0], "b": [2.0]}
