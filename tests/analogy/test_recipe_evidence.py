"""The evidence set-up end to end on tiny models: two seeds, the C baselines (tts, paper, multi-condition),
the vector options and the voice ensemble chosen on the pseudo-target, and every target utterance scored (the
upper bound on test)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

import pytest
import torch

from asr_analogy.analogy.access import audit_access_log, read_access_log
from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.io.manifest import read_manifest
from tests.analogy.conftest import PER_SPLIT, recipe_dict, write_config

SEEDS = [0, 1]
OPTIONS = ["encdec", "layers", "topk:0.5"]


@pytest.fixture(scope="module")
def evidence_run(tmp_path_factory, tiny_base, tiny_corpus):
    from click.testing import CliRunner

    from asr_analogy.cli import main

    root = tmp_path_factory.mktemp("evidence")
    cfg = recipe_dict(tiny_base, tiny_corpus, root / "exp", root / "tts_cache")
    cfg["finetune"] = {**cfg["finetune"], "learning_rate": 3.0e-3, "max_steps": 3, "seeds": SEEDS,
                       "baselines": ["tts", "multi"], "target_stage": {"lr_scale": 0.5, "max_steps": 2}}
    cfg["ensemble"] = {"enabled": True, "by": "voice"}
    cfg["lambda"] = {"mode": "pseudo_target", "pseudo_targets": ["beta"], "grid": [0.0, 0.5, 1.5],
                     "select_splits": ["train", "dev", "test"], "search": OPTIONS}
    cfg["evaluate"] = {**cfg["evaluate"], "lambda_curve": False, "export_models": False,
                       "all_target_utterances": True}
    path = write_config(root / "recipe.yaml", cfg)
    result = CliRunner().invoke(main, ["run", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root / "exp" / "tiny"


def _jobs(seed_dir):
    return {p.name: json.loads((p / "job.json").read_text()) for p in (seed_dir / "models").iterdir()}


def test_each_baseline_trains_on_exactly_the_data_it_names(evidence_run):
    seed_dir = evidence_run / "seed0"
    log = [e for e in read_access_log(seed_dir / "access_log.jsonl") if e["stage"] == "finetune"]
    assert audit_access_log(seed_dir / "access_log.jsonl") == []
    read = defaultdict(set)
    for e in log:
        kind = "synthetic" if "synthetic" in e["file"] else "real"
        read[e["consumer"]].add((kind, tuple(e["domains"]), tuple(e["splits"])))
    sources = ("delta", "gamma")
    assert read["finetune/C_tts"] == {("synthetic", ("alpha",), ("train",)), ("synthetic", ("beta",), ("train",))}
    assert read["finetune/C_multi"] == {("real", sources, ("train",)), ("synthetic", sources, ("train",)),
                                        ("synthetic", ("alpha",), ("train",)), ("synthetic", ("beta",), ("train",))}
    assert read["finetune/S"] == {("real", sources, ("train",)), ("synthetic", sources, ("train",))}
    assert read["finetune/upper_bound"] == {("real", ("alpha",), ("train",))}
    jobs = _jobs(seed_dir)
    steps = defaultdict(set)
    for info in jobs.values():
        steps[info["role"]].add(info["max_steps"])
    # C (paper) and C_tts take the same steps on the target text; multi-condition as many as paper's two stages
    assert steps["C"] == steps["C_tts"] == {2} and steps["S"] == {3} and steps["C_multi"] == {5}
    c_multi = next(i for i in jobs.values() if i["role"] == "C_multi" and "alpha" in " ".join(i["data"]))
    synthetic = read_manifest(evidence_run / "data" / "synthetic" / "manifest.jsonl")
    n_syn = sum(r["domain"] in ("alpha", "gamma", "delta") and r["split"] == "train" for r in synthetic)
    assert c_multi["train_utterances"] == 2 * PER_SPLIT["train"] + n_syn  # source real + every TTS clip named


def test_seeds_train_different_models_and_the_report_averages_them(evidence_run):
    fps = [{i["role"] + i["data"][0]: i["fingerprint"] for i in _jobs(evidence_run / f"seed{k}").values()} for k in SEEDS]
    assert set(fps[0]) == set(fps[1]) and all(fps[0][r] != fps[1][r] for r in fps[0])
    a0, a1 = (load_state_dict(next((evidence_run / f"seed{k}" / "models").glob("A-*")) / "model") for k in SEEDS)
    assert any(not torch.equal(a0[n], a1[n]) for n in a0 if a0[n].is_floating_point())
    res = json.loads((evidence_run / "results.json").read_text())
    assert res["seeds"] == SEEDS
    for name, row in res["targets"]["alpha"].items():
        if name.startswith("_"):
            continue
        per_seed = [json.loads((evidence_run / f"seed{k}" / "eval" / "alpha" / "metrics" / f"{name}.json").read_text())["wer"]
                    for k in SEEDS]
        assert row["mean"] == pytest.approx(statistics.fmean(per_seed))
        assert row["std"] == pytest.approx(statistics.stdev(per_seed))
    assert "vs_C_tts" in res["pooled"]["best"] and "vs_C_multi" in res["pooled"]["best"]
    assert "over seeds 0, 1" in (evidence_run / "RESULTS.md").read_text()


def test_every_system_is_scored_on_all_target_utterances_and_the_upper_bound_on_test(evidence_run):
    hyps_dir = evidence_run / "seed0" / "eval" / "alpha" / "hyps"
    names = {p.stem for p in hyps_dir.glob("*.jsonl")}
    expected = {"base", "C", "C_tts", "C_multi", "best", "upper_bound", "ensemble"}
    for head in ("syn2real", "C_tts_syn2real", "C_multi_syn2real"):
        expected |= {head, f"{head}_encdec", f"{head}_layers", f"{head}_topk0.5"}
    expected |= {"C_tts_syn2real_ensemble", "C_multi_syn2real_ensemble"}
    assert names == expected
    for name in names:
        splits = [r["split"] for r in read_manifest(hyps_dir / f"{name}.jsonl")]
        if name == "upper_bound":
            assert splits == ["test"] * PER_SPLIT["test"]
        else:
            assert sorted(splits) == sorted(s for s, n in PER_SPLIT.items() for _ in range(n))


def test_options_are_chosen_on_the_pseudo_target_and_best_is_their_argmin(evidence_run):
    sel = json.loads((evidence_run / "seed0" / "lambda" / "alpha.json").read_text())
    variants = sel["variants"]
    assert set(variants) == {"paper", "tts", "multi"}
    for choices in variants.values():
        assert set(choices) == {"single", *OPTIONS, "ensemble"}
        assert choices["single"]["pseudo_wer"] == min(choices["single"]["curve"]["wer"])
        for scheme, groups in (("encdec", 2), ("layers", 3)):
            tried = choices[scheme]["tried"]
            assert 1 < len(tried) <= 1 + groups * 2  # start, then the other grid values group by group
            assert choices[scheme]["pseudo_wer"] == min(t["wer"] for t in tried)
    flat = [(c["pseudo_wer"], v, o) for v, ch in variants.items() for o, c in ch.items()]
    assert sel["best"]["pseudo_wer"] == min(w for w, _, _ in flat)
    best = sel["best"]
    picked = {"paper": "syn2real", "tts": "C_tts_syn2real", "multi": "C_multi_syn2real"}[best["variant"]]
    if best["option"] == "ensemble" and best["variant"] == "paper":
        picked = "ensemble"
    elif best["option"]:
        picked += "_" + best["option"].replace(":", "")
    hyps = evidence_run / "seed0" / "eval" / "alpha" / "hyps"
    assert read_manifest(hyps / "best.jsonl") == read_manifest(hyps / f"{picked}.jsonl")


def test_each_c_gets_the_ensemble_vector_with_its_own_lambda_curve(evidence_run):
    seed_dir = evidence_run / "seed0"
    sel = json.loads((seed_dir / "lambda" / "alpha.json").read_text())
    index = json.loads((seed_dir / "vectors" / "index.json").read_text())
    sweeps = [json.loads(p.read_text()) for p in (seed_dir / "lambda" / "sweeps").glob("*.json")
              if not p.name.startswith("search-")]
    jobs = _jobs(seed_dir)
    results = json.loads((seed_dir / "eval" / "alpha" / "results.json").read_text())
    rows = {s["system"]: s for s in results["systems"]}
    for variant, role, system in (("paper", "C", "ensemble"), ("tts", "C_tts", "C_tts_syn2real_ensemble"),
                                  ("multi", "C_multi", "C_multi_syn2real_ensemble")):
        # the pseudo-target's C of this variant (trained on the pseudo-target's text), with an ensemble vector
        c_dir = next(name for name, i in jobs.items() if i["role"] == role and "beta" in " ".join(i["data"]))
        curve = next(s for s in sweeps if s["C"] == c_dir and index[s["vector"]]["kind"] == "ensemble")
        choice = sel["variants"][variant]["ensemble"]
        assert choice["curve"]["wer"] == curve["wer"]
        assert choice["pseudo_wer"] == min(curve["wer"]) and rows[system]["lambda"] == choice["scale"]
        # scored against its own C
        assert "vs_" + ("C" if variant == "paper" else role) in rows[system]["paired"]


def test_the_sparse_vector_keeps_the_largest_half_of_each_tensor(evidence_run):
    vectors = evidence_run / "seed0" / "vectors"
    index = json.loads((vectors / "index.json").read_text())
    sparse_id, entry = next((k, e) for k, e in index.items() if e["kind"] == "sparse")
    full, kept = load_state_dict(vectors / f"{entry['from']}.safetensors"), load_state_dict(vectors / f"{sparse_id}.safetensors")
    for name, t in full.items():
        k = max(1, int(0.5 * t.numel()))
        top = t.reshape(-1).abs().topk(k).values.min()
        expect = torch.where(t.abs() >= top, t, torch.zeros_like(t))
        assert int((kept[name] != 0).sum()) <= k
        assert torch.equal(kept[name][kept[name] != 0], t[kept[name] != 0]), name
        assert int((expect != 0).sum()) >= int((kept[name] != 0).sum())
