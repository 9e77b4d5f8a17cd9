"""Invariants: lambda = 0 gives the base, identical models give that model, tau then -tau gives the original,
float64 task arithmetic equals the direct formula."""

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import METHODS, TaskVector, apply_vector, merge, vector

from .conftest import write_model

GTA = [name for name, m in METHODS.items() if m.layout == "deltas"]


@pytest.fixture
def random_models(tmp_path):
    gen = torch.Generator().manual_seed(0)
    base = {"model.layers.0.w": torch.randn(40, 30, generator=gen), "model.layers.1.w": torch.randn(30, generator=gen),
            "model.ids": torch.arange(5)}
    fts = []
    for i in range(3):
        ft = {k: (v + 0.1 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v) for k, v in base.items()}
        fts.append(write_model(tmp_path / f"ft{i}", ft))
    return write_model(tmp_path / "base", base), fts, base


def _cfg(method, base, fts, **params):
    per_model = {"weight": 0.7, "density": 0.5} if METHODS[method].param("density") else {"weight": 0.7}
    return {"merge_method": method, "base_model": str(base), "seed": 3,
            "models": [{"model": str(f), "parameters": per_model} for f in fts],
            "parameters": params}


@pytest.mark.parametrize("method", GTA)
def test_lambda_zero_returns_the_base(random_models, tmp_path, method):
    base, fts, state = random_models
    out = load_state_dict(merge(_cfg(method, base, fts, **{"lambda": 0.0}), tmp_path / "out", progress=False))
    for name, tensor in state.items():
        assert torch.equal(out[name], tensor), name


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties", "slerp"])
def test_identical_models_give_that_model(random_models, tmp_path, method):
    base, fts, _ = random_models
    same = fts[0]
    if method == "linear":
        cfg = {"merge_method": "linear", "models": [{"model": str(same)}, {"model": str(same) + "/"}]}
    elif method == "slerp":
        copy = write_model(tmp_path / "copy", load_state_dict(same))
        cfg = {"merge_method": "slerp", "base_model": str(same), "models": [{"model": str(copy)}],
               "parameters": {"t": 0.3}}
    else:  # every fine-tune is the same model; normalized, their shared delta comes back unchanged
        copies = [write_model(tmp_path / f"copy{i}", load_state_dict(same)) for i in range(2)]
        cfg = {"merge_method": method, "base_model": str(base), "parameters": {"normalize": True},
               "models": [{"model": str(c), "parameters": {"weight": 1.0}} for c in copies]}
    out = load_state_dict(merge(cfg, tmp_path / "out", progress=False))
    for name, tensor in load_state_dict(same).items():
        assert_close(out[name], tensor, rtol=0, atol=1e-6)


def test_tau_then_minus_tau_returns_the_original(random_models, tmp_path):
    base, fts, state = random_models
    tau = vector(fts[0], base, tmp_path / "tau.safetensors", progress=False)
    there = apply_vector(base, tau, tmp_path / "there", progress=False)
    assert_close(load_state_dict(there)["model.layers.0.w"], load_state_dict(fts[0])["model.layers.0.w"])
    back = apply_vector(there, tau, tmp_path / "back", scale=-1.0, allow_other_base=True, progress=False)
    for name, tensor in state.items():
        assert_close(load_state_dict(back)[name], tensor, rtol=0, atol=1e-6)
    # the same in memory with TaskVector
    tv = TaskVector.from_models(fts[0], base)
    assert_close((-tv).apply_to(tv.apply_to(base), check_base=False)["model.layers.1.w"], state["model.layers.1.w"])


def test_float64_task_arithmetic_equals_the_direct_formula(tmp_path):
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(1000, dtype=torch.float64, generator=gen)
    thetas = [base + torch.randn(1000, dtype=torch.float64, generator=gen) for _ in range(3)]
    weights, lam = [0.3, -0.8, 1.1], 0.45
    b = write_model(tmp_path / "base", {"w": base})
    ms = [write_model(tmp_path / f"m{i}", {"w": t}) for i, t in enumerate(thetas)]
    cfg = {"merge_method": "task_arithmetic", "base_model": str(b), "parameters": {"lambda": lam},
           "models": [{"model": str(m), "parameters": {"weight": w}} for m, w in zip(ms, weights)]}
    out = load_state_dict(merge(cfg, tmp_path / "out", progress=False, chunk_elements=64))["w"]
    direct = base + lam * sum(w * (t - base) for w, t in zip(weights, thetas))
    assert out.dtype == torch.float64
    assert_close(out, direct, rtol=0, atol=1e-12)
