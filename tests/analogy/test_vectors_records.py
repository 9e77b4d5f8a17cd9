"""What the analogy vector helpers record and refuse: a vector's method, base fingerprint and provenance, the
``analogy.json`` beside an analogy model, overwriting rules, and ``LambdaModel``'s checks. Hand values."""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.analogy.vectors import (
    LambdaModel,
    ensemble_vector,
    ensemble_vector_file,
    load_vector,
    save_analogy_model,
    save_vector,
    syn2real_vector,
    vector_stats,
)
from asr_analogy.errors import ConfigError, MergeError, OutputExistsError
from asr_analogy.io.checkpoint import CheckpointReader, load_state_dict
from asr_analogy.merge.task_vector import TaskVector


def t(*xs):
    return torch.tensor(xs, dtype=torch.float32)


# -- syn2real_vector ----------------------------------------------------------------------------------------

def test_syn2real_vector_records_method_provenance_and_a_s_fingerprint(tiny_base):
    a = load_state_dict(tiny_base)
    name = "model.decoder.layer_norm.bias"
    b = {**a, name: a[name] + 2.0}
    v = syn2real_vector(tiny_base, b, {"voice": "amy"})
    assert v.method == "B - A"
    assert v.provenance == {"kind": "syn2real", "voice": "amy"}
    with CheckpointReader(tiny_base) as reader:
        assert v.base_fingerprint == reader.fingerprint()  # A's, the synthetic fine-tune's
    assert_close(v[name], torch.full_like(a[name], 2.0))
    assert syn2real_vector(a, b).provenance == {"kind": "syn2real"}


# -- ensembles ----------------------------------------------------------------------------------------------

def test_ensemble_vector_records_method_members_and_density():
    v1, v2 = {"w": t(1.0, -2.0)}, {"w": t(3.0, 2.0)}
    mean = ensemble_vector([v1, v2])
    assert mean.method == "ensemble:task_arithmetic"
    assert mean.provenance == {"kind": "ensemble", "method": "task_arithmetic", "members": 2}
    assert mean.base_fingerprint is None  # plain dicts carry no base
    ties = ensemble_vector([v1, v2], "ties", density=0.5, seed=4)
    assert ties.method == "ensemble:ties"
    assert ties.provenance == {"kind": "ensemble", "method": "ties", "members": 2, "density": 0.5, "seed": 4}


def test_ensemble_vector_keeps_a_shared_base_fingerprint():
    v1 = TaskVector({"w": t(1.0, -2.0)}, "fp-a", "B - A")
    v2 = TaskVector({"w": t(3.0, 2.0)}, "fp-a", "B - A")
    assert ensemble_vector([v1, v2]).base_fingerprint == "fp-a"


def test_ensemble_vector_refuses_no_members():
    with pytest.raises(MergeError) as err:
        ensemble_vector([])
    assert str(err.value) == "an ensemble needs at least one vector"


def test_ensemble_seed_defaults_to_zero_and_is_passed_on(tmp_path):
    v = {"w": torch.arange(1.0, 201.0)}
    assert not torch.equal(ensemble_vector([v], "dare_linear", density=0.5, seed=3)["w"],
                           ensemble_vector([v], "dare_linear", density=0.5, seed=0)["w"])
    assert torch.equal(ensemble_vector([v], "dare_linear", density=0.5)["w"],
                       ensemble_vector([v], "dare_linear", density=0.5, seed=0)["w"])
    path = TaskVector(v, None, "tensors").save(tmp_path / "v.safetensors")
    default = TaskVector.load(ensemble_vector_file([path], tmp_path / "d.safetensors", "dare_linear", 0.5))
    seeded = TaskVector.load(ensemble_vector_file([path], tmp_path / "s.safetensors", "dare_linear", 0.5, seed=0))
    assert torch.equal(default["w"], seeded["w"])


def test_ensemble_file_records_density_and_seed_replaces_and_is_quiet(tmp_path, capsys):
    paths = [TaskVector({"w": t(1.0, -2.0, 0.0, 0.5)}, "fp", "B - A").save(tmp_path / "v1.safetensors"),
             TaskVector({"w": t(3.0, -1.0, 4.0, -2.0)}, "fp", "B - A").save(tmp_path / "v2.safetensors")]
    out = tmp_path / "ens.safetensors"
    out.write_bytes(b"an older ensemble")
    ens = TaskVector.load(ensemble_vector_file(paths, out, "ties", density=0.5, seed=2))  # replaces it
    assert_close(ens["w"], t(2.0, -2.0, 4.0, 0.0))  # as in test_vectors.test_ensemble_ties_by_hand
    assert ens.provenance == {"kind": "ensemble", "method": "ties", "inputs": [str(p) for p in paths],
                              "density": 0.5, "seed": 2}
    assert ens.base_fingerprint == "fp"
    assert capsys.readouterr().err == ""  # no progress bar from a library call


def test_ensemble_method_error_lists_the_methods_that_combine_vectors():
    with pytest.raises(ConfigError) as err:
        ensemble_vector([{"w": t(1.0)}], "slerp")
    assert str(err.value).endswith("(choose one of task_arithmetic, magnitude_prune, ties, dare_linear, dare_ties, "
                                   "breadcrumbs, breadcrumbs_ties)")


# -- vector_stats -------------------------------------------------------------------------------------------

def test_vector_stats_groups_accumulate_and_other_names_are_other():
    v = {"model.encoder.a": t(0.3), "model.encoder.b": t(0.4), "proj_out.weight": t(2.0),
         "model.decoder.c": t(1.0)}
    s = vector_stats(v)
    assert s["l2_by_part"] == pytest.approx({"encoder": 0.5, "decoder": 1.0, "other": 2.0})
    assert s["l2"] == pytest.approx((0.25 + 1.0 + 4.0) ** 0.5)
    assert "cosine" not in s


def test_vector_stats_cosine_over_common_names_only():
    v = {"x": t(0.3), "y": t(0.4)}  # |v|² = 0.25 < 1
    other = {"x": t(0.1), "y": t(0.2), "only_other": t(5.0)}  # |other|² on common names = 0.05 < 1
    # dot over x and y: 0.03 + 0.08 = 0.11; cosine = 0.11 / sqrt(0.25 · 0.05)
    assert vector_stats(v, other)["cosine"] == pytest.approx(0.11 / (0.25 * 0.05) ** 0.5)


def test_vector_stats_cosine_with_a_zero_vector_is_zero():
    assert vector_stats({"x": t(0.0)}, {"x": t(1.0)})["cosine"] == 0.0
    assert vector_stats({"x": t(1.0)}, {"x": t(0.0)})["cosine"] == 0.0


# -- save_vector --------------------------------------------------------------------------------------------

def test_save_vector_keeps_the_vector_s_records_and_adds_provenance(tmp_path):
    tv = TaskVector({"w": t(1.0, 2.0)}, "fp-base", "B - A", {"kind": "syn2real", "voice": "amy"})
    path = tmp_path / "v.safetensors"
    path.write_bytes(b"an older vector")
    back = load_vector(save_vector(tv, path, {"target": "voicemail", "voice": "joe"}))  # replaces it
    assert back.base_fingerprint == "fp-base"
    assert back.method == "B - A"
    assert back.provenance == {"kind": "syn2real", "voice": "joe", "target": "voicemail"}
    assert load_vector(save_vector(tv, path)).provenance == {"kind": "syn2real", "voice": "amy"}


def test_save_vector_of_a_plain_dict(tmp_path):
    back = load_vector(save_vector({"w": t(1.0)}, tmp_path / "v.safetensors"))
    assert back.method == "tensors"
    assert back.base_fingerprint is None


# -- save_analogy_model -------------------------------------------------------------------------------------

NAME = "model.decoder.layer_norm.bias"


def _vector_file(tmp_path, tiny_base, fingerprint="another-base"):
    c = load_state_dict(tiny_base)
    tv = TaskVector({NAME: torch.linspace(-1.0, 1.0, c[NAME].numel())}, fingerprint, "B - A", {"kind": "syn2real"})
    return tv.save(tmp_path / "syn2real.safetensors"), c


def test_save_analogy_model_from_a_vector_file(tmp_path, tiny_base, capsys):
    vpath, c = _vector_file(tmp_path, tiny_base)  # recorded against another base: applied all the same
    out = save_analogy_model(tiny_base, vpath, 0.25, tmp_path / "D", card={"note": "pinned by the test"})
    d = load_state_dict(out)
    assert_close(d[NAME], c[NAME] + 0.25 * torch.linspace(-1.0, 1.0, c[NAME].numel()))
    other = "model.encoder.layer_norm.weight"
    assert torch.equal(d[other], c[other])
    assert (out / "config.json").is_file()
    assert "pinned by the test" in (out / "README.md").read_text()
    record = {"target_synthetic": str(tiny_base), "lambda": 0.25, "vector": str(vpath)}
    assert (out / "analogy.json").read_text() == json.dumps(record, indent=1)
    assert capsys.readouterr().err == ""  # quiet: no progress bar


def test_save_analogy_model_in_memory_records_lambda(tmp_path, tiny_base):
    c = load_state_dict(tiny_base)
    out = save_analogy_model(tiny_base, {NAME: torch.ones_like(c[NAME])}, 0.5, tmp_path / "D")
    assert json.loads((out / "analogy.json").read_text()) == {"target_synthetic": str(tiny_base), "lambda": 0.5}
    assert_close(load_state_dict(out)[NAME], c[NAME] + 0.5)


@pytest.mark.parametrize("from_file", [True, False])
def test_save_analogy_model_replaces_only_with_force(tmp_path, tiny_base, from_file):
    vpath, c = _vector_file(tmp_path, tiny_base)
    vector = vpath if from_file else TaskVector.load(vpath)
    out = save_analogy_model(tiny_base, vector, 0.25, tmp_path / "D")
    with pytest.raises(OutputExistsError):
        save_analogy_model(tiny_base, vector, 1.0, out)
    assert_close(load_state_dict(out)[NAME], c[NAME] + 0.25 * torch.linspace(-1.0, 1.0, c[NAME].numel()))
    save_analogy_model(tiny_base, vector, 1.0, out, force=True)
    assert_close(load_state_dict(out)[NAME], c[NAME] + torch.linspace(-1.0, 1.0, c[NAME].numel()))
    assert json.loads((out / "analogy.json").read_text())["lambda"] == 1.0


# -- LambdaModel --------------------------------------------------------------------------------------------

class _Norm(torch.nn.Module):
    """A linear layer and a batch norm (whose ``num_batches_tracked`` is an integer buffer)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.norm = torch.nn.BatchNorm1d(2)


def test_lambda_model_skips_integer_buffers_and_names_the_model_lacks():
    torch.manual_seed(0)
    m = _Norm()
    c_state = {k: v.clone() for k, v in m.state_dict().items()}
    c_state["head.weight"] = torch.ones(3)  # in θ_C's file but not a parameter of the loaded model
    lm = LambdaModel(m, c_state)
    assert lm.model is m
    assert lm.lam is None  # nothing set yet
    assert set(lm.c_state) == {"lin.weight", "lin.bias", "norm.weight", "norm.bias", "norm.running_mean",
                               "norm.running_var"}
    lm.set(2.0, {"lin.bias": t(1.0, -1.0)})
    assert_close(m.lin.bias.data, c_state["lin.bias"] + t(2.0, -2.0))
    assert lm.lam == 2.0


def test_lambda_model_checks_shapes_and_the_vector_when_built():
    m = _Norm()
    c_state = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(MergeError, match=r"tensor 'lin.weight': shape \[2, 2\] in the model but \[3, 2\] in θ_C"):
        LambdaModel(m, {**c_state, "lin.weight": torch.zeros(3, 2)})
    with pytest.raises(MergeError, match="vector tensor 'head.weight' is not a parameter"):
        LambdaModel(m, c_state, {"head.weight": torch.zeros(2)})
