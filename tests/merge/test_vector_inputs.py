"""Task-vector files as merge inputs (``vector:`` entries): hand-computed merges of vectors alone (the output
is a task vector) and of a base with vectors (the output is a model), and the base-fingerprint checks."""

import json

import pytest
import torch
import yaml

from asr_analogy.errors import CheckpointError, ConfigError, MergeError
from asr_analogy.io.checkpoint import CheckpointReader, load_state_dict
from asr_analogy.merge import TaskVector, apply_vector, merge, read_vector_metadata, vector

from .test_bad_input import _nothing_written


def t(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def _fingerprint(path) -> str:
    with CheckpointReader(path) as reader:
        return reader.fingerprint()


def _vectors(entries, **top):
    return {"models": [{"vector": str(p)} for p in entries], **top}


@pytest.fixture
def deltas(models, tmp_path):
    """va = a - base = [1, 0, -2, 0.5], vb = b - base = [-0.5, 1, 1, -2], as task-vector files of base."""
    return {k: vector(models[k], models["base"], tmp_path / f"v{k}.safetensors", progress=False) for k in ("a", "b")}


def test_mean_of_two_vector_files_is_a_task_vector(models, deltas, tmp_path):
    out = merge(_vectors([deltas["a"], deltas["b"]], merge_method="task_arithmetic", parameters={"normalize": True}),
                tmp_path / "mean.safetensors", progress=False)
    mean = TaskVector.load(out)
    assert set(mean) == {"layer.w"}  # a vector holds the floating tensors only
    assert torch.equal(mean["layer.w"], t(0.25, 0.5, -0.5, -0.75))  # (va + vb) / 2, by hand
    meta = read_vector_metadata(out)
    assert meta["base_fingerprint"] == _fingerprint(models["base"])  # both vectors' base
    assert mean.provenance == {"kind": "merge", "method": "task_arithmetic",
                               "inputs": [str(deltas["a"]), str(deltas["b"])]}
    # the result applies to its base like any task vector: base + mean
    applied = load_state_dict(apply_vector(models["base"], out, tmp_path / "applied", progress=False))
    assert torch.equal(applied["layer.w"], t(1.25, 2.5, 2.5, 3.25))


def test_ties_of_vector_files_with_opposite_signs(models, tmp_path):
    fp = _fingerprint(models["base"])
    # density 0.5 keeps the 2 largest magnitudes: v1 -> [3, 0, -2, 0], v2 -> [-1, 0, 4, 0]
    v1 = TaskVector({"layer.w": t(3.0, 0.5, -2.0, 0.1)}, fp).save(tmp_path / "v1.safetensors")
    v2 = TaskVector({"layer.w": t(-1.0, 0.2, 4.0, -0.3)}, fp).save(tmp_path / "v2.safetensors")
    cfg = _vectors([v1, v2], merge_method="ties", parameters={"density": 0.5})
    # elected signs of the sums [2, 0, 2, 0]: +, +, +, +; mean of the agreeing entries: [3, 0, 4, 0]
    # (the plain mean of the trimmed vectors would be [1, 0, 1, 0])
    ties = TaskVector.load(merge(cfg, tmp_path / "ties.safetensors", progress=False))
    assert torch.equal(ties["layer.w"], t(3.0, 0.0, 4.0, 0.0))
    # with the base: base + the same combination, written as a model
    out = merge({**cfg, "base_model": str(models["base"])}, tmp_path / "model", progress=False)
    merged = load_state_dict(out)
    assert torch.equal(merged["layer.w"], t(4.0, 2.0, 7.0, 4.0))  # [1, 2, 3, 4] + [3, 0, 4, 0]
    assert torch.equal(merged["layer.count"], torch.tensor([1]))  # copied from the base
    assert (out / "config.json").is_file()


def test_base_plus_vectors_equals_base_plus_models(models, deltas, tmp_path):
    top = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "parameters": {"lambda": 0.5}}
    out = merge(_vectors([deltas["a"], deltas["b"]], **top), tmp_path / "from_vectors", progress=False)
    got = load_state_dict(out)
    # base + 0.5 * (va + vb) = [1, 2, 3, 4] + 0.5 * [0.5, 1, -1, -1.5]
    assert torch.equal(got["layer.w"], t(1.25, 2.5, 2.5, 3.25))
    assert torch.equal(got["layer.count"], torch.tensor([1]))
    assert yaml.safe_load((out / "merge_config.yaml").read_text())["models"][0] == {"vector": str(deltas["a"])}
    # a model entry and a vector entry mix: a - base is the same term as va
    mixed = {**top, "models": [{"model": str(models["a"])}, {"vector": str(deltas["b"])}]}
    assert torch.equal(load_state_dict(merge(mixed, tmp_path / "mixed", progress=False))["layer.w"], got["layer.w"])


def test_vectors_of_different_bases_are_refused(models, deltas, tmp_path):
    other = vector(models["a"], models["c"], tmp_path / "from_c.safetensors", progress=False)  # base c
    out = tmp_path / "out.safetensors"
    with pytest.raises(MergeError, match=r"vectors .*va.safetensors and .*from_c.safetensors come from different "
                                         r"bases: fingerprint .* differs .*allow_other_base"):
        merge(_vectors([deltas["a"], other], merge_method="task_arithmetic"), out, progress=False)
    _nothing_written(tmp_path, out)
    model_out = tmp_path / "model"
    with pytest.raises(MergeError, match=r"vector .*from_c.safetensors does not belong to base .*base"):
        merge(_vectors([other], merge_method="task_arithmetic", base_model=str(models["base"])), model_out, progress=False)
    _nothing_written(tmp_path, model_out)
    # allow_other_base: combined anyway; the output then records no base
    merge(_vectors([deltas["a"], other], merge_method="task_arithmetic", allow_other_base=True), out, progress=False)
    assert read_vector_metadata(out)["base_fingerprint"] == ""
    merge(_vectors([other], merge_method="task_arithmetic", base_model=str(models["base"]), allow_other_base=True),
          model_out, progress=False)
    # base + (a - c) = [1, 2, 3, 4] + [2, 1, -2.5, 1]
    assert torch.equal(load_state_dict(model_out)["layer.w"], t(3.0, 3.0, 0.5, 5.0))


def test_excluded_tensor_of_a_vector_merge_does_not_move(models, tmp_path):
    v = TaskVector({"enc.w": t(1.0, 2.0), "dec.w": t(3.0)}).save(tmp_path / "v.safetensors")
    out = merge(_vectors([v], merge_method="task_arithmetic", exclude=["dec"]), tmp_path / "o.safetensors", progress=False)
    got = TaskVector.load(out)
    assert torch.equal(got["enc.w"], t(1.0, 2.0)) and torch.equal(got["dec.w"], t(0.0))


def test_bad_vector_entries(models, deltas, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"vector .*: merge_method linear merges models, not task vectors"):
        merge(_vectors([deltas["a"]], merge_method="linear"), out, progress=False)
    with pytest.raises(ConfigError, match="give either model: PATH or vector: PATH"):
        merge({"merge_method": "task_arithmetic", "models": [{"model": str(models["a"]), "vector": str(deltas["a"])}]},
              out, progress=False)
    with pytest.raises(ConfigError, match=r"needs base_model \(or vector: entries only\)"):
        merge({"merge_method": "task_arithmetic", "models": [{"model": str(models["a"])}, {"vector": str(deltas["b"])}]},
              out, progress=False)
    with pytest.raises(CheckpointError, match="not a task vector"):
        merge(_vectors([models["a"]], merge_method="task_arithmetic"), out, progress=False)
    short = TaskVector({"layer.w": t(1.0, 2.0)}).save(tmp_path / "short.safetensors")
    with pytest.raises(MergeError, match=r"tensor 'layer.w': shape \[2\] in vector .*short"):
        merge(_vectors([short], merge_method="task_arithmetic", base_model=str(models["base"])), out, progress=False)
    _nothing_written(tmp_path, out)
    assert json.loads(read_vector_metadata(deltas["a"])["provenance"])["base"] == str(models["base"])  # untouched
