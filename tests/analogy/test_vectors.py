"""Analogy maths on hand-computed tensors: θ_D = θ_C + λ(θ_B − θ_A), ensembles, in-place λ sweeps."""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.analogy.vectors import (
    LambdaModel,
    apply_analogy,
    ensemble_vector,
    ensemble_vector_file,
    load_vector,
    save_analogy_model,
    save_vector,
    syn2real_vector,
    vector_stats,
)
from asr_analogy.errors import CheckpointError, ConfigError, MergeError
from asr_analogy.merge.task_vector import TaskVector


def t(*xs):
    return torch.tensor(xs, dtype=torch.float32)


A = {"enc.w": t(1.0, 2.0), "dec.b": t(0.5), "step": torch.tensor([7])}
B = {"enc.w": t(2.0, 0.0), "dec.b": t(1.5), "step": torch.tensor([7])}
C = {"enc.w": t(0.0, 1.0), "dec.b": t(-1.0), "step": torch.tensor([3])}


def test_syn2real_vector_is_b_minus_a_over_floating_tensors():
    v = syn2real_vector(A, B)
    assert set(v) == {"enc.w", "dec.b"}  # the integer buffer is not part of a vector
    assert_close(v["enc.w"], t(1.0, -2.0))
    assert_close(v["dec.b"], t(1.0))


def test_analogy_by_hand():
    d = apply_analogy(C, syn2real_vector(A, B), 0.5)
    # θ_C + 0.5·(θ_B − θ_A) = [0, 1] + 0.5·[1, −2] = [0.5, 0];  −1 + 0.5·1 = −0.5
    assert_close(d["enc.w"], t(0.5, 0.0))
    assert_close(d["dec.b"], t(-0.5))
    assert torch.equal(d["step"], torch.tensor([3]))  # non-floating tensors come from θ_C


def test_invariants():
    v = syn2real_vector(A, B)
    assert_close(apply_analogy(C, v, 0.0)["enc.w"], C["enc.w"])  # λ = 0 → θ_C
    assert all(float(x.abs().max()) == 0 for x in syn2real_vector(A, A).values())  # A = B → no move
    there = apply_analogy(C, v, 0.7)
    back = apply_analogy(there, v, -0.7)  # τ then −τ → θ_C
    assert_close(back["enc.w"], C["enc.w"])
    # float64 equals the direct formula exactly
    a64 = {"w": torch.randn(5, 3, dtype=torch.float64)}
    b64 = {"w": torch.randn(5, 3, dtype=torch.float64)}
    c64 = {"w": torch.randn(5, 3, dtype=torch.float64)}
    lam = 0.3
    assert torch.equal(apply_analogy(c64, syn2real_vector(a64, b64), lam)["w"], c64["w"] + lam * (b64["w"] - a64["w"]))


def test_shape_mismatch_names_the_tensor():
    with pytest.raises(MergeError, match="enc.w"):
        syn2real_vector(A, {**B, "enc.w": t(1.0, 2.0, 3.0)})


def test_ensemble_task_arithmetic_is_the_mean():
    v1, v2 = {"w": t(1.0, -2.0, 0.0)}, {"w": t(3.0, 2.0, 4.0)}
    assert_close(ensemble_vector([v1, v2])["w"], t(2.0, 0.0, 2.0))


def test_ensemble_ties_by_hand():
    v1, v2 = {"w": t(1.0, -2.0, 0.0)}, {"w": t(3.0, -1.0, 4.0)}
    # density 1: signs of the sums [4, −3, 4] → +, −, +; agreeing entries averaged; a zero never agrees
    assert_close(ensemble_vector([v1, v2], "ties", density=1.0)["w"], t(2.0, -1.5, 4.0))
    v1, v2 = {"w": t(1.0, -2.0, 0.0, 0.5)}, {"w": t(3.0, -1.0, 4.0, -2.0)}
    # density 0.5 keeps the 2 largest magnitudes: v1 → [1, −2, 0, 0], v2 → [3, 0, 4, 0]
    # sums [4, −2, 4, 0] → +, −, +, + (a tie counts as +); means [2, −2, 4, 0]
    assert_close(ensemble_vector([v1, v2], "ties", density=0.5)["w"], t(2.0, -2.0, 4.0, 0.0))


def test_ensemble_dare_keeps_or_rescales_each_entry():
    v = {"w": torch.arange(1.0, 201.0)}
    out = ensemble_vector([v], "dare_linear", density=0.5, seed=3)["w"]
    kept = out != 0
    assert_close(out[kept], 2.0 * v["w"][kept])  # survivors divided by the density
    assert 50 < int(kept.sum()) < 150
    assert torch.equal(out, ensemble_vector([v], "dare_linear", density=0.5, seed=3)["w"])  # seeded
    assert_close(ensemble_vector([v], "dare_linear", density=1.0)["w"], v["w"])


def test_ensemble_errors():
    with pytest.raises(ConfigError, match="method ties needs a density"):
        ensemble_vector([{"w": t(1.0)}], "ties")
    with pytest.raises(ConfigError, match="method task_arithmetic takes no density"):
        ensemble_vector([{"w": t(1.0)}], "task_arithmetic", density=0.5)
    with pytest.raises(ConfigError, match=r"density of method dare_ties must be a number in \(0, 1\], got 1.5"):
        ensemble_vector([{"w": t(1.0)}], "dare_ties", density=1.5)
    with pytest.raises(MergeError, match=r"vector .*member-1.safetensors has no tensor 'w'"):
        ensemble_vector([{"w": t(1.0)}, {"u": t(1.0)}])
    with pytest.raises(ConfigError, match="unknown ensemble method 'median'"):
        ensemble_vector([{"w": t(1.0)}], "median")
    with pytest.raises(ConfigError, match="unknown ensemble method 'linear'"):  # merges models, not vectors
        ensemble_vector([{"w": t(1.0)}], "linear")


def test_ensemble_file_is_the_mean_of_the_member_files(tmp_path):
    # the recipe's path: member vector files on disk, combined by merge() into a task-vector file
    v1 = TaskVector({"w": t(1.0, -2.0, 0.5), "b": t(4.0)}, "fp-a", "B - A")
    v2 = TaskVector({"w": t(3.0, 2.0, 0.25), "b": t(-1.0)}, "fp-b", "B - A")  # another pair: another base A
    paths = [v1.save(tmp_path / "v1.safetensors"), v2.save(tmp_path / "v2.safetensors")]
    out = ensemble_vector_file(paths, tmp_path / "ens.safetensors")
    ens = TaskVector.load(out)
    assert_close(ens["w"], t(2.0, 0.0, 0.375), rtol=0, atol=0)  # (v1 + v2) / 2, by hand
    assert_close(ens["b"], t(1.5), rtol=0, atol=0)
    assert ens.base_fingerprint is None  # the members' bases differ: none recorded
    assert ens.provenance == {"kind": "ensemble", "method": "task_arithmetic", "inputs": [str(p) for p in paths]}


def test_ensemble_through_the_kernel_equals_the_direct_mean_bitwise(tmp_path):
    g = torch.Generator().manual_seed(0)
    vs = [{"w": torch.randn(700, 500, generator=g), "b": torch.randn(33, generator=g)} for _ in range(3)]
    ens = ensemble_vector(vs)  # 350k entries: several streamed chunks
    for name in ("w", "b"):
        direct = vs[0][name] + vs[1][name]
        direct += vs[2][name]
        direct /= torch.tensor(3.0)
        assert torch.equal(ens[name], direct)


def test_vector_stats_by_hand():
    v = {"model.encoder.w": t(3.0, 4.0), "model.decoder.b": t(12.0)}
    s = vector_stats(v, {"model.encoder.w": t(3.0, 4.0), "model.decoder.b": t(0.0)})
    assert s["l2"] == pytest.approx(13.0)
    assert s["l2_by_part"] == pytest.approx({"encoder": 5.0, "decoder": 12.0, "other": 0.0})
    assert s["cosine"] == pytest.approx(25.0 / (13.0 * 5.0))
    assert s["entries"] == 3 and s["tensors"] == 2


def test_vector_file_round_trip(tmp_path):
    v = {"a": t(1.0, 2.0), "b": torch.ones(2, 2)}
    path = save_vector(v, tmp_path / "v.safetensors", {"kind": "syn2real"})
    back = load_vector(path)
    assert set(back) == {"a", "b"} and torch.equal(back["b"], v["b"])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vector(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_vector(tmp_path / "bad.safetensors")


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)


def test_lambda_model_sets_weights_in_place_without_accumulating():
    torch.manual_seed(0)
    m = _Tiny()
    c_state = {k: v.clone() for k, v in m.state_dict().items()}
    v1 = {"lin.weight": torch.tensor([[1.0, -1.0]]), "lin.bias": torch.tensor([2.0])}
    v2 = {"lin.weight": torch.tensor([[0.0, 4.0]])}
    lm = LambdaModel(m, c_state, v1)
    lm.set(0.5)
    assert_close(m.lin.weight.data, c_state["lin.weight"] + torch.tensor([[0.5, -0.5]]))
    assert_close(m.lin.bias.data, c_state["lin.bias"] + 1.0)
    lm.set(0.25, v2)  # another vector: from θ_C again, bias back to θ_C (v2 has no bias)
    assert_close(m.lin.weight.data, c_state["lin.weight"] + torch.tensor([[0.0, 1.0]]))
    assert_close(m.lin.bias.data, c_state["lin.bias"])
    lm.reset()
    assert torch.equal(m.lin.weight.data, c_state["lin.weight"])
    with pytest.raises(MergeError, match="shape"):
        lm.set(1.0, {"lin.weight": torch.zeros(3, 3)})
    with pytest.raises(MergeError, match="not a parameter"):
        lm.set(1.0, {"other.weight": torch.zeros(1)})


def test_save_analogy_model_writes_a_loadable_directory(tmp_path, tiny_base):
    from asr_analogy.io.checkpoint import load_state_dict

    c = load_state_dict(tiny_base)
    name = "model.decoder.layer_norm.bias"
    v = {name: torch.ones_like(c[name])}
    out = save_analogy_model(tiny_base, v, 0.25, tmp_path / "D")
    d = load_state_dict(out)
    assert_close(d[name], c[name] + 0.25)
    other = "model.encoder.layer_norm.weight"
    assert torch.equal(d[other], c[other])
    assert (out / "config.json").is_file()


@pytest.mark.parametrize("ensemble, message", [
    ({"method": "task_arithmetic", "density": 0.5},
     r"key 'ensemble.density': method task_arithmetic takes no density"),
    ({"method": "ties"}, r"key 'ensemble.density': method ties needs a density \(a number in \(0, 1\]\)"),
    ({"method": "dare_linear", "density": 0}, r"key 'ensemble.density': density of method dare_linear must be a number in \(0, 1\], got 0"),
    ({"method": "slerp"}, r"key 'ensemble.method': unknown ensemble method 'slerp'"),
])
def test_recipe_config_checks_the_ensemble_against_the_merge_method(tmp_path, ensemble, message):
    from asr_analogy.analogy.config import load_recipe_config

    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps({"name": "x", "domains": {"targets": ["t"]}, "ensemble": ensemble}))
    with pytest.raises(ConfigError, match=message):
        load_recipe_config(path)
    ok = {"method": "dare_ties", "density": 0.3}
    path.write_text(json.dumps({"name": "x", "domains": {"targets": ["t"]}, "ensemble": ok}))
    assert load_recipe_config(path).ensemble.density == 0.3
