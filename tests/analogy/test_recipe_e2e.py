"""The recipe end to end on a tiny random Whisper and generated audio, through the CLI."""

from __future__ import annotations

import json

from asr_analogy.analogy.access import TARGET_REAL_ALLOWED, audit_access_log, read_access_log
from asr_analogy.analogy.stages import STAGE_NAMES
from asr_analogy.io.manifest import read_manifest


def test_every_stage_completes_and_writes_its_outputs(e2e_run):
    _, exp, output = e2e_run
    for stage in STAGE_NAMES:
        marker = json.loads((exp / "stages" / f"{stage}.done.json").read_text())
        assert marker["stage"] == stage
    results = json.loads((exp / "results.json").read_text())
    systems = {s["system"]: s for s in results["targets"]["alpha"]["systems"]}
    # with the ensemble, the pseudo-target chooses between the single vector and the ensemble: `best`
    assert set(systems) == {"base", "C", "syn2real", "ensemble", "best", "upper_bound", "syn2real_oracle"}
    best = results["targets"]["alpha"]["best"]
    picked = "ensemble" if best["option"] == "ensemble" else "syn2real"
    assert best["variant"] == "paper" and systems["best"]["lambda"] == systems[picked]["lambda"]
    hyps_dir = exp / "eval" / "alpha" / "hyps"
    assert read_manifest(hyps_dir / "best.jsonl") == read_manifest(hyps_dir / f"{picked}.jsonl")
    for name, s in systems.items():
        hyps = read_manifest(exp / "eval" / "alpha" / "hyps" / f"{name}.jsonl")
        assert len(hyps) == 3 and all("hypothesis" in h for h in hyps)  # the 3 alpha test clips
        assert {h["domain"] for h in hyps} == {"alpha"} and {h["split"] for h in hyps} == {"test"}
        assert s["n_utterances"] == 3
        assert 0 <= s["wer"] and s["wer_ci95"][0] <= s["wer"] <= s["wer_ci95"][1]
    assert systems["C"]["rel_vs_C"] == 0
    assert (exp / "RESULTS.md").read_text().count("| C_paper (source real+TTS, then target TTS) |") == 1
    assert (exp / "plots" / "wer_vs_lambda_alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (exp / "plots" / "systems.png").stat().st_size > 1000


def test_jobs_train_on_the_planned_data(e2e_run):
    _, exp, _ = e2e_run
    jobs = {p.name.split("-")[0] + ":" + p.name: json.loads((p / "job.json").read_text())
            for p in (exp / "models").iterdir()}
    roles = sorted(j["role"] for j in jobs.values())
    # A, B, S shared; C and UB for alpha; C′ for the pseudo-target beta; one A per voice (low, high)
    assert roles == ["A", "A_voice", "A_voice", "B", "C", "C", "S", "UB"]
    for name, info in jobs.items():
        train = read_manifest((exp / "models" / name.split(":", 1)[1] / "train.jsonl"))
        domains = {r["domain"] for r in train}
        sources = {r["source"] for r in train}
        if info["role"] in ("A", "A_voice"):
            assert domains == {"gamma", "delta"} and sources == {"synthetic"}
        elif info["role"] == "B":
            assert domains == {"gamma", "delta"} and sources == {"real"}
        elif info["role"] == "S":
            assert domains == {"gamma", "delta"} and sources == {"real", "synthetic"}
        elif info["role"] == "UB":
            assert domains == {"alpha"} and sources == {"real"}
        else:  # C of alpha, C′ of the pseudo-target beta
            assert domains in ({"alpha"}, {"beta"}) and sources == {"synthetic"}
        assert {r["split"] for r in train} == {"train"}
    voices = sorted({r["voice"] for n, i in jobs.items() if i["role"] == "A_voice"
                     for r in read_manifest(exp / "models" / n.split(":", 1)[1] / "train.jsonl")})
    assert voices == ["tone:high", "tone:low"]


def test_no_stage_reads_target_real_audio_except_evaluation_oracle_and_upper_bound(e2e_run):
    _, exp, _ = e2e_run
    log = [e for e in read_access_log(exp / "access_log.jsonl") if e["stage"] != "notebook"]  # the recipe's own
    assert log, "the access log is empty"
    assert audit_access_log(exp / "access_log.jsonl") == []
    readers = {e["consumer"] for e in log if e["target_real_audio"]}
    assert readers == {"evaluate", "select_lambda/oracle", "finetune/upper_bound"}
    assert all(any(r == p or r.startswith(p) for p in TARGET_REAL_ALLOWED) for r in readers)
    # λ selection proper read only the pseudo-target's real audio
    pseudo = [e for e in log if e["consumer"].startswith("select_lambda/pseudo_target")]
    assert pseudo and all(e["domains"] == ["beta"] and not e["target_real_audio"] for e in pseudo)
    # the synthesizer saw text of train/dev only, never test
    synth = [e for e in log if e["stage"] == "synthesize"]
    assert synth and all(e["splits"] == ["train"] for e in synth)


def test_lambda_comes_from_the_pseudo_target_curve(e2e_run):
    _, exp, _ = e2e_run
    sel = json.loads((exp / "lambda" / "alpha.json").read_text())
    curve = sel["mean_curve"]
    best = min(curve["wer"])
    assert sel["value"] == min(l for l, w in zip(curve["lambdas"], curve["wer"]) if w == best)
    assert "pseudo-target" in sel["how"] and "beta" in sel["how"]
    assert sel["oracle"]["curve"]["label"].startswith("ORACLE")


def test_exported_models_are_the_evaluated_analogy(e2e_run):
    import torch

    from asr_analogy.analogy.vectors import apply_analogy, load_vector
    from asr_analogy.io.checkpoint import load_state_dict

    _, exp, _ = e2e_run
    sel = json.loads((exp / "lambda" / "alpha.json").read_text())
    info = json.loads((exp / "final" / "alpha" / "syn2real" / "analogy.json").read_text())
    assert info["lambda"] == sel["value"]
    (pair,) = info["pairs"]
    c = load_state_dict(info["target_synthetic"])
    a, b = load_state_dict(pair[0]), load_state_dict(pair[1])
    out = load_state_dict(exp / "final" / "alpha" / "syn2real")
    expected = apply_analogy(c, {k: b[k] - a[k] for k in c if c[k].is_floating_point()}, sel["value"])
    assert set(out) == set(c)
    for name in c:
        torch.testing.assert_close(out[name], expected[name], rtol=0, atol=1e-6)
    # the ensemble directory is θ_C + λ·(the ensemble vector that was evaluated)
    ens_info = json.loads((exp / "final" / "alpha" / "ensemble" / "analogy.json").read_text())
    ens = load_vector(exp / "vectors" / f"{ens_info['spec']['vector']}.safetensors")
    ens_out = load_state_dict(exp / "final" / "alpha" / "ensemble")
    ens_expected = apply_analogy(c, ens, ens_info["lambda"])
    for name in c:
        torch.testing.assert_close(ens_out[name], ens_expected[name], rtol=0, atol=1e-6)
    assert (exp / "final" / "alpha" / "syn2real" / "config.json").is_file()


def test_apply_vector_applies_every_vector_the_recipe_writes(e2e_run, tmp_path):
    import torch
    from click.testing import CliRunner

    from asr_analogy.cli import main
    from asr_analogy.io.checkpoint import load_state_dict
    from asr_analogy.merge import read_vector_metadata

    _, exp, _ = e2e_run
    files = sorted((exp / "vectors").glob("*.safetensors"))
    index = json.loads((exp / "vectors" / "index.json").read_text())
    assert {f.stem for f in files} == set(index) and len(files) >= 4  # pairs, per-voice pairs, ensembles
    for f in files:
        meta = read_vector_metadata(f)
        assert json.loads(meta["provenance"])["kind"] == index[f.stem]["kind"]
    for name in ("syn2real", "ensemble"):
        info = json.loads((exp / "final" / "alpha" / name / "analogy.json").read_text())
        vector = exp / "vectors" / f"{info['spec']['vector']}.safetensors"
        out = tmp_path / name
        result = CliRunner().invoke(main, ["apply-vector", info["target_synthetic"], str(vector), str(out),
                                           "--scale", repr(info["lambda"]), "--allow-other-base", "--quiet"])
        assert result.exit_code == 0, result.output
        applied, exported = load_state_dict(out), load_state_dict(exp / "final" / "alpha" / name)
        assert set(applied) == set(exported)
        for key in exported:
            assert torch.equal(applied[key], exported[key]), key
