"""What a task-vector file records and how it is read back: the exact ``__metadata__`` that ``vector`` and
``TaskVector.save`` write, ``TaskVector.load``'s attributes (and its defaults for a sparse header), and the
format helpers of ``merge.vector_format`` with their exact refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from asr_analogy.errors import CheckpointError, MergeError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader, load_state_dict
from asr_analogy.merge import TaskVector, vector
from asr_analogy.merge.vector_format import (
    check_vector_metadata,
    common_base_fingerprint,
    read_vector_metadata,
    vector_metadata,
    vector_provenance,
)

from .conftest import write_model


def _fp(path) -> str:
    with CheckpointReader(path) as reader:
        return reader.fingerprint()


def _meta(path) -> dict:
    with CheckpointReader(path) as reader:
        return reader.metadata()


def _tv() -> TaskVector:
    return TaskVector({"enc.w": torch.tensor([1.0, -2.0]), "dec.w": torch.tensor([0.5])}, "sha256-full:ab",
                      "(finetuned - base) + (finetuned - base)", {"kind": "syn2real", "A": "a", "B": "b"})


SAVED_META = {
    "format": "pt", "asr_analogy_kind": "task_vector", "method": "(finetuned - base) + (finetuned - base)",
    "base_fingerprint": "sha256-full:ab", "finetuned_fingerprint": "", "tensor_count": "2",
    "provenance": '{"A": "a", "B": "b", "kind": "syn2real"}',
}


# ---- vector_format ---------------------------------------------------------------------------------------


def test_vector_metadata_is_every_key_as_text_with_provenance_in_sorted_json():
    assert vector_metadata("finetuned - base", None, 3) == {
        "asr_analogy_kind": "task_vector", "method": "finetuned - base", "base_fingerprint": "",
        "finetuned_fingerprint": "", "tensor_count": "3", "provenance": "{}",
    }
    assert vector_metadata("m", "fp-base", 1, finetuned_fingerprint="fp-ft", provenance={"b": 1, "a": [2]}) == {
        "asr_analogy_kind": "task_vector", "method": "m", "base_fingerprint": "fp-base",
        "finetuned_fingerprint": "fp-ft", "tensor_count": "1", "provenance": '{"a": [2], "b": 1}',
    }


def test_a_compressed_vector_reads_as_a_task_vector_keeping_its_other_keys():
    meta = {"asr_analogy_kind": "task_vector_compressed", "compression": "int8", "method": "m"}
    assert check_vector_metadata(meta, "v.safetensors") == {"asr_analogy_kind": "task_vector",
                                                             "compression": "int8", "method": "m"}


def test_a_plain_model_is_refused_naming_its_path(models):
    with pytest.raises(CheckpointError) as err:
        read_vector_metadata(models["base"])
    assert str(err.value) == f"{models['base']}: not a task vector (no asr_analogy_kind=task_vector in its metadata)"


@pytest.mark.parametrize("text", [None, "", "[1, 2]", '"kind"', "{not json"])
def test_provenance_that_is_absent_or_not_a_json_object_reads_as_empty(text):
    meta = {} if text is None else {"provenance": text}
    assert vector_provenance(meta) == {}


def test_provenance_object_is_read_back():
    assert vector_provenance({"provenance": '{"kind": "merge", "inputs": ["a"]}'}) == {"kind": "merge", "inputs": ["a"]}


def test_common_base_fingerprint_refuses_disagreement_unless_allowed():
    v1, v2 = ("v1", "sha256-full:aa"), ("v2", "sha256-full:bb")
    with pytest.raises(MergeError) as err:
        common_base_fingerprint([v1, v2])  # refusing is the default
    assert str(err.value) == (
        "vectors v1 and v2 come from different bases: fingerprint sha256-full:aa differs from sha256-full:bb: "
        "the weights are not the same; set allow_other_base: true to combine them anyway"
    )
    assert common_base_fingerprint([v1, v2], allow_other_base=True) == ""
    with pytest.raises(MergeError) as err:
        common_base_fingerprint([v1], ("base-dir", "sha256-full:cc"))
    assert str(err.value) == (
        "vector v1 does not belong to base base-dir: fingerprint sha256-full:aa differs from sha256-full:cc: "
        "the weights are not the same; set allow_other_base: true to merge it with a different base anyway"
    )


def test_common_base_fingerprint_is_the_shared_one_or_empty_when_none_is_recorded():
    assert common_base_fingerprint([("v1", ""), ("v2", "")]) == ""
    assert common_base_fingerprint([]) == ""
    assert common_base_fingerprint([("v1", ""), ("v2", "fp")], ("base", "fp")) == "fp"


# ---- vector ----------------------------------------------------------------------------------------------


def test_vector_records_both_fingerprints_and_where_it_came_from(models, tmp_path):
    out = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    assert _meta(out) == {
        "format": "pt", "asr_analogy_kind": "task_vector", "method": "finetuned - base",
        "base_fingerprint": _fp(models["base"]), "finetuned_fingerprint": _fp(models["a"]), "tensor_count": "1",
        "provenance": json.dumps({"base": str(models["base"]), "finetuned": str(models["a"])}),
    }
    loaded = TaskVector.load(out)
    assert loaded.base_fingerprint == _fp(models["base"]) and loaded.method == "finetuned - base"
    assert loaded.provenance == {"base": str(models["base"]), "finetuned": str(models["a"])}


# ---- TaskVector.save / load ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v.safetensors", "v_dir"])
def test_save_writes_the_tensors_and_metadata_and_load_reads_them_back(tmp_path, name):
    path = _tv().save(tmp_path / name)
    assert path == tmp_path / name
    assert path.is_file() if name.endswith(".safetensors") else (path / "model.safetensors").is_file()
    assert _meta(path) == SAVED_META
    state = load_state_dict(path)
    assert sorted(state) == ["dec.w", "enc.w"]
    assert torch.equal(state["enc.w"], torch.tensor([1.0, -2.0])) and torch.equal(state["dec.w"], torch.tensor([0.5]))
    loaded = TaskVector.load(path)
    assert loaded.base_fingerprint == "sha256-full:ab"
    assert loaded.method == "(finetuned - base) + (finetuned - base)"
    assert loaded.provenance == {"kind": "syn2real", "A": "a", "B": "b"}
    assert torch.equal(loaded["enc.w"], torch.tensor([1.0, -2.0]))


@pytest.mark.parametrize("name", ["v.safetensors", "v_dir"])
def test_save_refuses_an_existing_output_unless_forced(tmp_path, name):
    path = TaskVector({"w": torch.tensor([1.0])}).save(tmp_path / name)
    with pytest.raises(OutputExistsError) as err:
        TaskVector({"w": torch.tensor([2.0])}).save(path)
    assert str(err.value) == f"{path} already exists; pass --force to replace it"
    assert torch.equal(load_state_dict(path)["w"], torch.tensor([1.0]))
    TaskVector({"w": torch.tensor([2.0])}).save(path, force=True)
    assert torch.equal(load_state_dict(path)["w"], torch.tensor([2.0]))


def test_an_empty_vector_saves_as_one_file_and_loads_back_empty(tmp_path):
    path = TaskVector({}).save(tmp_path / "empty.safetensors")
    assert path.is_file()
    assert len(TaskVector.load(path)) == 0


def test_load_fills_in_what_a_sparse_header_leaves_out(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.tensor([1.0])}, path, metadata={"asr_analogy_kind": "task_vector", "base_fingerprint": ""})
    loaded = TaskVector.load(path)
    assert loaded.base_fingerprint is None
    assert loaded.method == "finetuned - base"
    assert loaded.provenance == {}


def test_load_refuses_a_model_that_is_not_a_vector(tmp_path):
    model = write_model(tmp_path / "m", {"w": torch.tensor([1.0])})
    with pytest.raises(CheckpointError) as err:
        TaskVector.load(model)
    assert str(err.value) == f"{model}: not a task vector (no asr_analogy_kind=task_vector in its metadata)"
