"""Every merge preset on tiny checkpoints, against numbers computed by hand.

base w = [1, 2, 3, 4]; a - base = [1, 0, -2, 0.5]; b - base = [-0.5, 1, 1, -2]; c - base = [-1, -1, 0.5, -0.5].
"""

import math

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.merge import merge

from .conftest import declared, write_model

T = torch.tensor


def run(tmp_path, cfg, **kw):
    out = merge(cfg, tmp_path / "out", progress=False, **kw)
    return load_state_dict(out)


def gta(models, method, per_model, params=None, **extra):
    cfg = {
        "merge_method": method,
        "base_model": str(models["base"]),
        "models": [{"model": str(models[k]), "parameters": p} for k, p in per_model.items()],
        "parameters": params or {},
    }
    cfg.update(extra)
    return cfg


def test_task_arithmetic(models, tmp_path):
    # 1 * [1, 0, -2, 0.5] + 0.5 * [-0.5, 1, 1, -2] = [0.75, 0.5, -1.5, -0.5]
    out = run(tmp_path, gta(models, "task_arithmetic", {"a": {"weight": 1.0}, "b": {"weight": 0.5}}))
    assert_close(out["layer.w"], T([1.75, 2.5, 1.5, 3.5]))
    assert torch.equal(out["layer.count"], T([1]))  # integer buffers come from the base


def test_task_arithmetic_normalize_lambda_and_negation(models, tmp_path):
    # ([0.75, 0.5, -1.5, -0.5] / 1.5) * 2 = [1, 2/3, -2, -2/3]
    cfg = gta(models, "task_arithmetic", {"a": {"weight": 1.0}, "b": {"weight": 0.5}}, {"normalize": True, "lambda": 2.0})
    assert_close(run(tmp_path, cfg)["layer.w"], T([2.0, 2 + 2 / 3, 1.0, 4 - 2 / 3]))
    # a negative weight subtracts the task: base - [1, 0, -2, 0.5]
    cfg = gta(models, "task_arithmetic", {"a": {"weight": -1.0}})
    assert_close(run(tmp_path, cfg, force=True)["layer.w"], T([0.0, 2.0, 5.0, 3.5]))


def test_ties_sum_and_count_elections(models, tmp_path):
    per = {k: {"weight": 1.0} for k in "abc"}
    # mass [-0.5, 0, -0.5, -2] -> signs [-, +, -, -]; agreeing means:
    # e0 (-0.5 - 1) / 2, e1 1 / 1, e2 -2 / 1, e3 (-2 - 0.5) / 2
    out = run(tmp_path, gta(models, "ties", per))
    assert_close(out["layer.w"], T([1 - 0.75, 3.0, 1.0, 4 - 1.25]))
    # count: e2 votes [-, +, +] -> positive: (1 + 0.5) / 2 = 0.75
    out = run(tmp_path, gta(models, "ties", per, {"consensus": "count"}), force=True)
    assert_close(out["layer.w"], T([1 - 0.75, 3.0, 3.75, 4 - 1.25]))


def test_ties_trims_by_density_and_normalizes_by_agreeing_weights(models, tmp_path):
    # density 0.75 keeps 3 of 4: a -> [1, 0, -2, 0.5]; b -> [0, 1, 1, -2] (|-0.5| is the smallest)
    # weighted with b at 0.5: mass [1, 0.5, -1.5, -0.5] -> e0 1/1, e1 0.5/0.5, e2 -2/1, e3 -1/0.5
    per = {"a": {"weight": 1.0, "density": 0.75}, "b": {"weight": 0.5, "density": 0.75}}
    assert_close(run(tmp_path, gta(models, "ties", per))["layer.w"], T([2.0, 3.0, 1.0, 2.0]))
    # without normalize the agreeing weighted entries are summed: [1, 0.5, -2, -1]
    out = run(tmp_path, gta(models, "ties", per, {"normalize": False}), force=True)
    assert_close(out["layer.w"], T([2.0, 2.5, 1.0, 3.0]))


def test_ties_entries_where_no_delta_agrees_stay_at_the_base(tmp_path):
    # d1 = [0.5, -1, 0.1, 2], d2 = [-0.4, -0.2, 0.3, 1]; density 0.5 keeps two entries each:
    # d1 -> [0, -1, 0, 2], d2 -> [-0.4, 0, 0, 1]; mass [-0.4, -1, 0, 3] -> signs [-, -, + (tie), +]
    # e2: nothing agrees -> 0; e3: (2 + 1) / 2
    b = write_model(tmp_path / "base", {"w": torch.zeros(4)})
    ms = [write_model(tmp_path / f"m{i}", {"w": T(d)}) for i, d in enumerate([[0.5, -1.0, 0.1, 2.0], [-0.4, -0.2, 0.3, 1.0]])]
    cfg = {"merge_method": "ties", "base_model": str(b),
           "models": [{"model": str(m), "parameters": {"density": 0.5}} for m in ms]}
    assert_close(run(tmp_path, cfg)["w"], T([-0.4, -1.0, 0.0, 1.5]))


def test_magnitude_prune(models, tmp_path):
    # density 0.5: a -> [1, 0, -2, 0], b -> [0, 1, 0, -2] (tie |1| = |1|: the lower index wins); summed
    per = {"a": {"density": 0.5}, "b": {"density": 0.5}}
    assert_close(run(tmp_path, gta(models, "magnitude_prune", per))["layer.w"], T([2.0, 3.0, 1.0, 2.0]))


def test_linear_averages_the_models_including_a_weighted_base(models, tmp_path):
    cfg = {"merge_method": "linear", "models": [{"model": str(models["a"])}, {"model": str(models["b"])}]}
    assert_close(run(tmp_path, cfg)["layer.w"], T([1.25, 2.5, 2.5, 3.25]))
    # base listed with weight 2: (2 * [1, 2, 3, 4] + [2, 2, 1, 4.5] + [0.5, 3, 4, 2]) / 4
    cfg = {
        "merge_method": "linear",
        "base_model": str(models["base"]),
        "models": [{"model": str(models["base"]), "parameters": {"weight": 2.0}},
                   {"model": str(models["a"]), "parameters": {"weight": 1.0}},
                   {"model": str(models["b"]), "parameters": {"weight": 1.0}}],
    }
    assert_close(run(tmp_path, cfg, force=True)["layer.w"], T([4.5, 9.0, 11.0, 14.5]) / 4)


def test_slerp_between_base_and_one_model(models, tmp_path):
    cfg = {"merge_method": "slerp", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}],
           "parameters": {"t": 0.5}}
    v0, v1 = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 4.5]
    cos = sum(x * y for x, y in zip(v0, v1)) / math.hypot(*v0) / math.hypot(*v1)
    theta = math.acos(cos)
    c = math.sin(0.5 * theta) / math.sin(theta)
    assert_close(run(tmp_path, cfg)["layer.w"], T([c * (x + y) for x, y in zip(v0, v1)]))


TEN = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.9, -1.0]


@pytest.fixture
def ten(tmp_path):
    return {
        "base": write_model(tmp_path / "b10", {"w": torch.zeros(10)}),
        "ft": write_model(tmp_path / "f10", {"w": T(TEN)}),
    }


@pytest.mark.parametrize("method", ["breadcrumbs", "breadcrumbs_ties"])
def test_breadcrumbs(ten, tmp_path, method):
    # density 0.5, gamma 0.1: drop the largest (|-1|) and the 4 smallest; keep 0.5 .. 0.9 in magnitude
    cfg = {"merge_method": method, "base_model": str(ten["base"]),
           "models": [{"model": str(ten["ft"]), "parameters": {"density": 0.5, "gamma": 0.1}}]}
    assert_close(run(tmp_path, cfg)["w"], T([0, 0, 0, 0, 0.5, -0.6, 0.7, -0.8, 0.9, 0.0]))


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
def test_dare_keeps_a_seeded_random_subset_rescaled_by_inverse_density(tmp_path, method):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4000, generator=gen)
    delta = torch.randn(4000, generator=gen)
    b = write_model(tmp_path / "base", {"w": base})
    f = write_model(tmp_path / "ft", {"w": base + delta})
    cfg = {"merge_method": method, "base_model": str(b), "seed": 7,
           "models": [{"model": str(f), "parameters": {"density": 0.25, "weight": 1.0}}]}
    out = run(tmp_path, cfg)["w"]
    changed = out != base
    # survivors: base + delta / 0.25; the rest: the base
    assert_close(out[changed], (base + (base + delta - base) / 0.25)[changed])
    assert 800 < int(changed.sum()) < 1200
    again = merge(cfg, tmp_path / "again", progress=False)
    assert torch.equal(load_state_dict(again)["w"], out)
    cfg["seed"] = 8
    assert not torch.equal(run(tmp_path, cfg, force=True)["w"], out)


def test_analogy_shorthand_and_pairs(models, tmp_path):
    # c + 0.5 * (b - a) = [0, 1, 3.5, 3.5] + 0.5 * [-1.5, 1, 3, -2.5]
    cfg = {"analogy": {"a": str(models["a"]), "b": str(models["b"]), "c": str(models["c"]), "lambda": 0.5}}
    out = run(tmp_path, cfg)
    assert_close(out["layer.w"], T([-0.75, 1.5, 5.0, 2.25]))
    assert torch.equal(out["layer.count"], T([4]))  # from C
    # two pair vectors, averaged: (b - a) = [-1.5, 1, 3, -2.5], (c - base) = [-1, -1, 0.5, -0.5]
    cfg = {"analogy": {"c": str(models["base"]), "lambda": 1.0,
                       "pairs": [{"a": str(models["a"]), "b": str(models["b"])},
                                 {"a": str(models["base"]), "b": str(models["c"])}]}}
    assert_close(run(tmp_path, cfg, force=True)["layer.w"], T([1 - 1.25, 2.0, 4.75, 2.5]))


def test_analogy_with_ties_over_pair_vectors(models, tmp_path):
    from asr_analogy.merge import analogy_merge

    # pair vectors v1 = b - a = [-1.5, 1, 3, -2.5], v2 = c - base = [-1, -1, 0.5, -0.5]
    # mass [-2.5, 0, 3.5, -3] -> signs [-, +, +, -]; disjoint means [-1.25, 1, 1.75, -1.5]
    out = analogy_merge(models["base"], [(models["a"], models["b"]), (models["base"], models["c"])], 1.0,
                        tmp_path / "out", method="ties", progress=False)
    assert_close(load_state_dict(out)["layer.w"], T([-0.25, 3.0, 4.75, 2.5]))


def test_filters_overrides_include_exclude(models, tmp_path):
    two = {}
    for k in ("base", "a"):
        state = load_state_dict(models[k])
        two[k] = write_model(tmp_path / f"two_{k}", {"enc.w": state["layer.w"], "dec.w": state["layer.w"] * 2})
    base = {"merge_method": "task_arithmetic", "base_model": str(two["base"])}
    # per-model weight by name filter: 0 for "enc", 1 elsewhere
    cfg = dict(base, models=[{"model": str(two["a"]), "parameters": {"weight": [{"filter": "enc", "value": 0.0}, {"value": 1.0}]}}])
    out = run(tmp_path, cfg)
    assert_close(out["enc.w"], T([1.0, 2.0, 3.0, 4.0]))
    assert_close(out["dec.w"], T([4.0, 4.0, 2.0, 9.0]))
    # override by regex: lambda 0.5 on "^dec" beats the global lambda 1
    cfg = dict(base, models=[{"model": str(two["a"])}], overrides=[{"pattern": "^dec", "parameters": {"lambda": 0.5}}])
    out = run(tmp_path, cfg, force=True)
    assert_close(out["dec.w"], T([2.0, 4.0, 6.0, 8.0]) + 0.5 * T([2.0, 0.0, -4.0, 1.0]))
    assert_close(out["enc.w"], T([2.0, 2.0, 1.0, 4.5]))
    # include/exclude: only "enc" merged, "dec" copied from the base
    cfg = dict(base, models=[{"model": str(two["a"])}], include=["^enc"])
    out = run(tmp_path, cfg, force=True)
    assert_close(out["dec.w"], T([2.0, 4.0, 6.0, 8.0]))
    assert_close(out["enc.w"], T([2.0, 2.0, 1.0, 4.5]))
    cfg = dict(base, models=[{"model": str(two["a"])}], exclude="enc")
    out = run(tmp_path, cfg, force=True)
    assert_close(out["enc.w"], T([1.0, 2.0, 3.0, 4.0]))


def test_gradient_over_layers(tmp_path):
    names = [f"model.layers.{i}.w" for i in range(3)]
    b = write_model(tmp_path / "base", {n: torch.zeros(2) for n in names} | {"model.norm": torch.zeros(2)})
    f = write_model(tmp_path / "ft", {n: torch.ones(2) for n in names} | {"model.norm": torch.ones(2)})
    cfg = {"merge_method": "task_arithmetic", "base_model": str(b),
           "models": [{"model": str(f), "parameters": {"weight": [0.0, 1.0]}}]}
    out = run(tmp_path, cfg)
    # t = layer / 2 -> weights 0, 0.5, 1; a tensor outside numbered layers has t = 0
    for i, w in enumerate([0.0, 0.5, 1.0]):
        assert_close(out[f"model.layers.{i}.w"], torch.full((2,), w))
    assert_close(out["model.norm"], torch.zeros(2))


def test_dtypes(models, tmp_path):
    cfg = gta(models, "task_arithmetic", {"a": {"weight": 1.0}, "b": {"weight": 0.5}}, out_dtype="bfloat16")
    out = run(tmp_path, cfg)["layer.w"]
    assert out.dtype == torch.bfloat16 and torch.equal(out, T([1.75, 2.5, 1.5, 3.5], dtype=torch.bfloat16))
    cfg = gta(models, "task_arithmetic", {"a": {"weight": 1.0}}, dtype="float64")
    out = run(tmp_path, cfg, force=True)["layer.w"]
    assert out.dtype == torch.float64  # mergekit semantics: dtype is also the output dtype


def test_chunked_streaming_equals_one_chunk(tmp_path):
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(5000, generator=gen)
    fts = [base + torch.randint(-3, 4, (5000,), generator=gen) * 0.25 for _ in range(3)]  # many equal magnitudes
    b = write_model(tmp_path / "base", {"w": base})
    ms = [write_model(tmp_path / f"m{i}", {"w": t}) for i, t in enumerate(fts)]
    for method in ("ties", "breadcrumbs_ties", "magnitude_prune", "task_arithmetic", "dare_ties"):
        cfg = {"merge_method": method, "base_model": str(b),
               "models": [{"model": str(m), "parameters": declared(method, density=0.4, weight=1.0, gamma=0.05)} for m in ms]}
        whole = load_state_dict(merge(cfg, tmp_path / f"{method}_1", progress=False, chunk_elements=1 << 20))
        if method == "dare_ties":  # random masks are drawn per chunk: same chunking, same result
            again = load_state_dict(merge(cfg, tmp_path / f"{method}_2", progress=False, chunk_elements=1 << 20))
            assert torch.equal(whole["w"], again["w"])
            continue
        chunked = load_state_dict(merge(cfg, tmp_path / f"{method}_2", progress=False, chunk_elements=333))
        assert torch.equal(whole["w"], chunked["w"]), method


def test_analogy_with_a_lambda_per_parameter_group(tmp_path):
    from .conftest import write_model

    enc, dec = "model.encoder.layers.0.w", "model.decoder.layers.0.w"
    a = write_model(tmp_path / "a", {enc: T([0.0, 0.0]), dec: T([0.0, 0.0])})
    b = write_model(tmp_path / "b", {enc: T([1.0, -2.0]), dec: T([4.0, 8.0])})
    c = write_model(tmp_path / "c", {enc: T([10.0, 10.0]), dec: T([20.0, 20.0])})
    groups = {"scheme": "encdec", "values": {"encoder": 0.5, "decoder": 0.25}}
    cfg = {"analogy": {"a": str(a), "b": str(b), "c": str(c), "lambda_groups": groups}}
    out = run(tmp_path, cfg)
    assert_close(out[enc], T([10.5, 9.0]))   # c + 0.5 (b - a)
    assert_close(out[dec], T([21.0, 22.0]))  # c + 0.25 (b - a)
    # an explicit override still wins over the group's λ
    cfg["overrides"] = [{"pattern": "decoder", "parameters": {"lambda": 0.0}}]
    out = run(tmp_path, cfg, force=True)
    assert_close(out[dec], T([20.0, 20.0])) and assert_close(out[enc], T([10.5, 9.0]))
