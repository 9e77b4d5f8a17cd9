"""``vector`` and ``apply_vector`` tensor by tensor: the dtypes they write and compute in (exact where float32
would round), which input an error names, the progress bar, ``force``, shards, copied files and the card."""

from __future__ import annotations

import json
import re

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from asr_analogy.errors import ConfigError, MergeError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader, load_state_dict
from asr_analogy.merge import TaskVector, apply_vector, stream, vector

from .conftest import write_model

E40, E41 = 2.0 ** -40, 2.0 ** -41  # below float32's resolution at 1.0, exact in float64


def _f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def _fp(path) -> str:
    with CheckpointReader(path) as reader:
        return reader.fingerprint()


@pytest.fixture
def wide(tmp_path):
    """base and ft with two float tensors (layer.w 16 bytes, other.w 8 bytes) and an integer buffer."""
    count = torch.tensor([7])
    return {
        "base": write_model(tmp_path / "wbase", {"layer.w": torch.tensor([1.0, 2.0, 3.0, 4.0]),
                                                  "other.w": torch.tensor([0.5, -1.0]), "layer.count": count}),
        "ft": write_model(tmp_path / "wft", {"layer.w": torch.tensor([2.0, 2.0, 1.0, 4.5]),
                                              "other.w": torch.tensor([1.5, -1.0]), "layer.count": count}),
    }


# ---- vector ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stored, written", [(torch.float64, torch.float64), (torch.float16, torch.float32),
                                              (torch.bfloat16, torch.float32), (torch.float32, torch.float32)])
def test_vector_dtype_is_the_stored_one_widened_to_float32(tmp_path, stored, written):
    base = write_model(tmp_path / "base", {"w": torch.tensor([1.0, 2.0], dtype=stored)})
    ft = write_model(tmp_path / "ft", {"w": torch.tensor([1.5, 0.0], dtype=stored)})
    tau = load_state_dict(vector(ft, base, tmp_path / "tau.safetensors", progress=False))["w"]
    assert tau.dtype == written and torch.equal(tau, torch.tensor([0.5, -2.0], dtype=written))


def test_vector_of_float64_models_is_computed_in_float64(tmp_path):
    base = write_model(tmp_path / "base", {"w": _f64(1.0 + E40, 3.0)})
    ft = write_model(tmp_path / "ft", {"w": _f64(1.0 + 2 * E40, 3.0)})
    tau = load_state_dict(vector(ft, base, tmp_path / "tau.safetensors", progress=False))["w"]
    assert torch.equal(tau, _f64(E40, 0.0))


def test_vector_in_an_explicit_dtype_accepts_models_stored_in_different_precisions(tmp_path):
    base = write_model(tmp_path / "base", {"w": torch.tensor([1.0, 2.0])})
    ft = write_model(tmp_path / "ft", {"w": _f64(1.5, 0.0)})
    tau = load_state_dict(vector(ft, base, tmp_path / "tau.safetensors", dtype="float16", progress=False))["w"]
    assert tau.dtype == torch.float16 and torch.equal(tau, torch.tensor([0.5, -2.0], dtype=torch.float16))
    with pytest.raises(MergeError) as err:
        vector(ft, base, tmp_path / "refused.safetensors", progress=False)
    assert str(err.value) == (f"tensor 'w': dtype torch.float64 in model {ft} but torch.float32 in base {base} "
                              "(set dtype: to merge models stored in different precisions)")


def test_vector_names_the_finetuned_model_and_the_base_it_does_not_match(models, tmp_path):
    short = write_model(tmp_path / "short", {"layer.w": torch.zeros(4)})
    with pytest.raises(MergeError) as err:
        vector(short, models["base"], tmp_path / "tau.safetensors", progress=False)
    assert str(err.value) == (f"model {short} has no tensor 'layer.count', which base {models['base']} has "
                              "(1 tensor(s) missing)")
    assert not (tmp_path / "tau.safetensors").exists()


def test_vector_names_the_input_holding_nan(models, tmp_path):
    bad = write_model(tmp_path / "bad", {"layer.w": torch.tensor([1.0, 2.0, float("nan"), 4.0]),
                                         "layer.count": torch.tensor([2])})
    with pytest.raises(MergeError) as err:
        vector(bad, models["base"], tmp_path / "tau.safetensors", progress=False)
    assert str(err.value) == f"model {bad}: tensor 'layer.w' contains NaN (first at flat index 2)"


def test_vector_looks_for_nan_only_in_the_chunk_that_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CPU_CHUNK", 2)
    base = write_model(tmp_path / "base", {"w": torch.tensor([float("nan"), 1.0, 1.0, 1.0])})
    ft = write_model(tmp_path / "ft", {"w": torch.tensor([1.0, 1.0, 1.0, float("inf")])})
    with pytest.raises(MergeError) as err:
        vector(ft, base, tmp_path / "tau.safetensors", progress=False)
    assert str(err.value) == f"model {base}: tensor 'w' contains NaN (first at flat index 0)"


def test_vector_refuses_an_unknown_device_and_dtype(models, tmp_path):
    with pytest.raises(ConfigError) as err:
        vector(models["a"], models["base"], tmp_path / "tau.safetensors", device="abacus", progress=False)
    assert str(err.value) == "unknown device 'abacus'; use cpu, cuda, cuda:N or auto"
    with pytest.raises(ConfigError) as err:
        vector(models["a"], models["base"], tmp_path / "tau.safetensors", dtype="int3", progress=False)
    assert str(err.value) == "unknown dtype 'int3' (float32, float64, float16, bfloat16)"


def test_vector_directory_output_default_and_given_shard_size(wide, tmp_path):
    one = vector(wide["ft"], wide["base"], tmp_path / "one", progress=False)
    assert sorted(p.name for p in one.iterdir()) == ["model.safetensors"]
    two = vector(wide["ft"], wide["base"], tmp_path / "two", shard_size=16, progress=False)
    assert sorted(p.name for p in two.iterdir()) == ["model-00001-of-00002.safetensors",
                                                     "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    assert torch.equal(load_state_dict(two)["other.w"], torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("name", ["tau.safetensors", "tau_dir"])
def test_vector_refuses_an_existing_output_unless_forced(models, tmp_path, name):
    out = vector(models["a"], models["base"], tmp_path / name, progress=False)
    with pytest.raises(OutputExistsError) as err:
        vector(models["b"], models["base"], out)
    assert str(err.value) == f"{out} already exists; pass --force to replace it"
    vector(models["b"], models["base"], out, force=True, progress=False)
    assert torch.equal(load_state_dict(out)["layer.w"], torch.tensor([-0.5, 1.0, 1.0, -2.0]))  # b - base


def test_vector_shows_a_progress_bar_named_vector_unless_told_not_to(models, tmp_path, capsys):
    vector(models["a"], models["base"], tmp_path / "quiet.safetensors", progress=False)
    assert capsys.readouterr().err == ""
    vector(models["a"], models["base"], tmp_path / "shown.safetensors")
    assert capsys.readouterr().err.startswith("\rvector: ")


# ---- apply_vector ----------------------------------------------------------------------------------------


def test_apply_vector_to_a_float64_base_is_computed_in_float64(tmp_path):
    base = write_model(tmp_path / "base", {"w": _f64(1.0 + E40, 2.0)})
    tau = TaskVector({"w": _f64(1.0 + E41, 0.5)}).save(tmp_path / "tau.safetensors")
    got = load_state_dict(apply_vector(base, tau, tmp_path / "out", progress=False))["w"]
    assert torch.equal(got, _f64(2.0 + E40 + E41, 2.5))


def test_apply_vector_in_another_dtype_casts_floats_only(wide, tmp_path):
    tau = TaskVector({"layer.w": torch.tensor([1.0, 0.0, -2.0, 0.5])}).save(tmp_path / "tau.safetensors")
    out = apply_vector(wide["base"], tau, tmp_path / "out", out_dtype="float16", progress=False)
    got = load_state_dict(out)
    assert got["layer.w"].dtype == torch.float16 and torch.equal(got["layer.w"], torch.tensor([2.0, 2.0, 1.0, 4.5]).half())
    assert got["other.w"].dtype == torch.float16 and torch.equal(got["other.w"], torch.tensor([0.5, -1.0]).half())
    assert got["layer.count"].dtype == torch.int64 and torch.equal(got["layer.count"], torch.tensor([7]))
    assert json.loads((out / "config.json").read_text()) == {"model_type": "toy", "torch_dtype": "float16"}


def test_apply_vector_of_a_float16_base_writes_float16(tmp_path):
    base = write_model(tmp_path / "base", {"w": torch.tensor([1.0, 2.0], dtype=torch.float16)})
    tau = TaskVector({"w": torch.tensor([0.5, -1.0], dtype=torch.float16)}).save(tmp_path / "tau.safetensors")
    got = load_state_dict(apply_vector(base, tau, tmp_path / "out", scale=2.0, progress=False))["w"]
    assert got.dtype == torch.float16 and torch.equal(got, torch.tensor([2.0, 0.0], dtype=torch.float16))


def test_apply_vector_copies_the_base_config(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    out = apply_vector(models["base"], tau, tmp_path / "out", progress=False)
    assert json.loads((out / "config.json").read_text()) == {"model_type": "toy", "torch_dtype": "float32"}


def test_apply_vector_refuses_an_unknown_out_dtype_and_device(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    with pytest.raises(ConfigError) as err:
        apply_vector(models["base"], tau, tmp_path / "out", out_dtype="int3", progress=False)
    assert str(err.value) == "unknown out_dtype 'int3' (float32, float64, float16, bfloat16)"
    with pytest.raises(ConfigError) as err:
        apply_vector(models["base"], tau, tmp_path / "out", device="abacus", progress=False)
    assert str(err.value) == "unknown device 'abacus'; use cpu, cuda, cuda:N or auto"


def test_apply_vector_refusals_name_vector_base_tensor_and_shapes(models, tmp_path):
    base = models["base"]
    tau = vector(models["a"], base, tmp_path / "tau.safetensors", progress=False)
    with pytest.raises(MergeError) as err:
        apply_vector(models["c"], tau, tmp_path / "out", progress=False)
    assert str(err.value) == (
        f"vector {tau} does not belong to base {models['c']}: fingerprint {_fp(base)} differs from "
        f"{_fp(models['c'])}: the weights are not the same; pass --allow-other-base to apply it to a different model anyway"
    )
    extra = TaskVector({"nope.w": torch.zeros(4)}).save(tmp_path / "extra.safetensors")
    with pytest.raises(MergeError) as err:
        apply_vector(base, extra, tmp_path / "out", progress=False)
    assert str(err.value) == f"vector {extra}: tensor 'nope.w' does not exist in base {base}"
    short = TaskVector({"layer.w": torch.zeros(3)}).save(tmp_path / "short.safetensors")
    with pytest.raises(MergeError) as err:
        apply_vector(base, short, tmp_path / "out", progress=False)
    assert str(err.value) == f"tensor 'layer.w': shape [3] in vector {short} but [4] in base {base}"
    assert not (tmp_path / "out").exists()


def test_apply_vector_without_a_recorded_base_applies_anywhere(models, tmp_path):
    bare = tmp_path / "bare.safetensors"
    save_file({"layer.w": torch.tensor([1.0, 0.0, -2.0, 0.5])}, bare, metadata={"asr_analogy_kind": "task_vector"})
    out = apply_vector(models["c"], bare, tmp_path / "out", progress=False)
    assert torch.equal(load_state_dict(out)["layer.w"], torch.tensor([1.0, 1.0, 1.5, 4.0]))
    assert "(made by `unknown`), written by `asr-analogy apply-vector`." in ModelCard.load(out / "README.md").text


def test_apply_vector_names_the_input_holding_nan(wide, tmp_path):
    nan_tau = TaskVector({"layer.w": torch.tensor([0.0, float("nan"), 0.0, 0.0])}).save(tmp_path / "nan.safetensors")
    with pytest.raises(MergeError) as err:
        apply_vector(wide["base"], nan_tau, tmp_path / "out", progress=False)
    assert str(err.value) == f"model {nan_tau}: tensor 'layer.w' contains NaN (first at flat index 1)"
    bad = write_model(tmp_path / "bad", {"layer.w": torch.tensor([1.0, 2.0, 3.0, 4.0]),
                                         "other.w": torch.tensor([0.5, float("inf")]), "layer.count": torch.tensor([7])})
    tau = TaskVector({"layer.w": torch.zeros(4)}).save(tmp_path / "tau.safetensors")  # other.w is copied
    with pytest.raises(MergeError) as err:
        apply_vector(bad, tau, tmp_path / "out", progress=False)
    assert str(err.value) == f"model {bad}: tensor 'other.w' contains Inf (first at flat index 1)"
    assert not (tmp_path / "out").exists()


def test_apply_vector_looks_for_nan_only_in_the_chunk_that_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CPU_CHUNK", 2)
    base = write_model(tmp_path / "base", {"w": torch.tensor([1.0, 1.0, 1.0, float("nan")])})
    tau = TaskVector({"w": torch.tensor([float("inf"), 0.0, 0.0, 0.0])}).save(tmp_path / "tau.safetensors")
    with pytest.raises(MergeError) as err:
        apply_vector(base, tau, tmp_path / "out", progress=False)
    assert str(err.value) == f"model {tau}: tensor 'w' contains Inf (first at flat index 0)"
    other = write_model(tmp_path / "other", {"w": torch.zeros(4), "x.w": torch.tensor([1e5, 1.0, 1.0, float("nan")])})
    fine = TaskVector({"w": torch.ones(4)}).save(tmp_path / "fine.safetensors")
    with pytest.raises(MergeError) as err:  # x.w is copied; 1e5 overflows float16 in its first chunk
        apply_vector(other, fine, tmp_path / "out", out_dtype="float16", progress=False)
    assert str(err.value) == "tensor 'x.w': merged values overflow torch.float16 (inputs are finite)"


def test_apply_vector_shards_and_refuses_an_existing_output_unless_forced(wide, tmp_path):
    tau = TaskVector({"layer.w": torch.ones(4)}).save(tmp_path / "tau.safetensors")
    out = apply_vector(wide["base"], tau, tmp_path / "out", progress=False)
    assert sorted(p.name for p in out.glob("*.safetensors*")) == ["model.safetensors"]
    with pytest.raises(OutputExistsError) as err:
        apply_vector(wide["base"], tau, out, scale=2.0)
    assert str(err.value) == f"{out} already exists; pass --force to replace it"
    apply_vector(wide["base"], tau, out, scale=2.0, force=True, shard_size=16, progress=False)
    assert sorted(p.name for p in out.glob("*.safetensors*")) == [  # 8, 16 and 8 bytes: one shard each
        "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
        "model.safetensors.index.json"]
    assert torch.equal(load_state_dict(out)["layer.w"], torch.tensor([3.0, 4.0, 5.0, 6.0]))


def test_apply_vector_card_names_the_base_the_vector_and_how_it_was_made(models, tmp_path):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    out = apply_vector(models["base"], tau, tmp_path / "applied", scale=0.5, progress=False)
    text = ModelCard.load(out / "README.md").text
    assert (f"The base plus 0.5 × the task vector `{tau}` (made by `finetuned - base`), written by "
            "`asr-analogy apply-vector`.") in text
    made_from = text.split("## Made from\n\n")[1].split("\n\n")[0].splitlines()
    assert made_from == [f"- `{models['base']}`", f"- `{tau}`"]


def test_apply_vector_shows_a_progress_bar_named_apply_unless_told_not_to(models, tmp_path, capsys):
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    apply_vector(models["base"], tau, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    apply_vector(models["base"], tau, tmp_path / "shown")
    assert re.match(r"\rapply: ", capsys.readouterr().err)
