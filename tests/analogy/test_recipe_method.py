"""The recipe's method itself, end to end on tiny models: with a fixed λ > 0 and fine-tunes that move the
weights enough to change decoding, the exported model is θ_C + λ(θ_B − θ_A) and its transcripts are the ones
scored as "C + syn2real". Skipping the vector, or swapping A and B, fails these tests."""

from __future__ import annotations

import json

import pytest
import torch

from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.io.manifest import read_manifest
from tests.analogy.conftest import recipe_dict, write_config

LAMBDA = 1.5


@pytest.fixture(scope="module")
def method_run(tmp_path_factory, tiny_base, tiny_corpus):
    from click.testing import CliRunner

    from asr_analogy.cli import main

    root = tmp_path_factory.mktemp("method")
    cfg = recipe_dict(tiny_base, tiny_corpus, root / "exp", root / "tts_cache")
    cfg["finetune"] = {**cfg["finetune"], "learning_rate": 3.0e-3, "max_steps": 4}
    cfg["ensemble"] = {"enabled": False}
    cfg["lambda"] = {"mode": "fixed", "value": LAMBDA}
    cfg["evaluate"] = {**cfg["evaluate"], "lambda_curve": False}
    path = write_config(root / "recipe.yaml", cfg)
    result = CliRunner().invoke(main, ["run", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exp = root / "exp" / "tiny"
    info = json.loads((exp / "final" / "alpha" / "syn2real" / "analogy.json").read_text())
    (a_dir, b_dir), = info["pairs"]
    return {"exp": exp, "info": info, "A": a_dir, "B": b_dir, "C": info["target_synthetic"]}


def _hyps(exp, system):
    return {r["id"]: r["hypothesis"] for r in read_manifest(exp / "eval" / "alpha" / "hyps" / f"{system}.jsonl")}


def test_exported_model_is_c_plus_lambda_b_minus_a(method_run):
    info = method_run["info"]
    assert info["lambda"] == LAMBDA
    a, b, c = (load_state_dict(method_run[k]) for k in ("A", "B", "C"))
    out = load_state_dict(method_run["exp"] / "final" / "alpha" / "syn2real")
    assert set(out) == set(c)
    moved = 0
    for name, theta_c in c.items():
        if not theta_c.is_floating_point():
            assert torch.equal(out[name], theta_c)
            continue
        expected = (theta_c.double() + LAMBDA * (b[name].double() - a[name].double())).to(theta_c.dtype)
        torch.testing.assert_close(out[name], expected, rtol=0, atol=2e-6, msg=name)
        moved += int(not torch.equal(out[name], theta_c))
    assert moved > len(c) // 2, "the vector left most tensors of θ_C unchanged"


def test_scored_hypotheses_are_the_exported_model_and_differ_from_c(method_run, tmp_path):
    from asr_analogy.speech.transcribe import transcribe

    exp = method_run["exp"]
    scored = _hyps(exp, "syn2real")
    records = read_manifest(exp / "eval" / "alpha" / "hyps" / "syn2real.jsonl")
    fresh = transcribe(exp / "final" / "alpha" / "syn2real", records, batch_size=8, max_new_tokens=6, progress=False)
    assert {r["id"]: r["hypothesis"] for r in fresh} == scored
    c = _hyps(exp, "C")
    assert scored.keys() == c.keys() and scored != c, "C + syn2real decodes exactly like C: the vector had no effect"


def test_swapping_a_and_b_changes_the_result(method_run, tmp_path):
    from asr_analogy.analogy.vectors import save_analogy_model, syn2real_vector
    from asr_analogy.speech.transcribe import transcribe

    exp = method_run["exp"]
    swapped = syn2real_vector(method_run["B"], method_run["A"])  # θ_A − θ_B
    out = save_analogy_model(method_run["C"], swapped, LAMBDA, tmp_path / "swapped")
    records = read_manifest(exp / "eval" / "alpha" / "hyps" / "syn2real.jsonl")
    hyps = {r["id"]: r["hypothesis"] for r in transcribe(out, records, batch_size=8, max_new_tokens=6, progress=False)}
    assert hyps != _hyps(exp, "syn2real")
