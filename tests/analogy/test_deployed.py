"""``evaluate.deployed``: the exported systems scored in their deployed form, CTranslate2 int8."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from asr_analogy.analogy.config import load_recipe_config
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.export import score_deployed
from asr_analogy.errors import ConfigError
from asr_analogy.io.manifest import read_manifest
from asr_analogy.io.yaml_file import parse_overrides
from asr_analogy.speech.transcribe import transcribe


def test_deployed_needs_the_exported_models(tmp_path):
    path = tmp_path / "r.yaml"
    data = {"name": "x", "domains": {"targets": ["vm"]}, "evaluate": {"deployed": "int4"}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="evaluate.deployed"):
        load_recipe_config(path)
    data["evaluate"] = {"deployed": "int8", "export_models": False}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="needs evaluate.export_models"):
        load_recipe_config(path)


def test_deployed_rows_decode_the_exports_with_ctranslate2(e2e_run, tmp_path):
    cfg_path, exp, _ = e2e_run
    shutil.copytree(exp.parent, tmp_path / "exp")  # the shared run is left as it is
    cfg = load_recipe_config(cfg_path, overrides=parse_overrides([f"exp_dir={tmp_path / 'exp'}",
                                                                  "evaluate.deployed=int8"]))
    messages = []
    ctx = RecipeContext(cfg, echo=messages.append)
    out = tmp_path / "exp" / "tiny"
    target_plan = ctx.plan().targets[0]
    records = [{k: v for k, v in r.items() if k != "hypothesis"}
               for r in read_manifest(out / "eval" / "alpha" / "hyps" / "syn2real.jsonl")]
    rows = score_deployed(ctx, target_plan, records)
    assert set(rows) == {"syn2real (CT2 int8)", "ensemble (CT2 int8)"}
    for name in ("syn2real", "ensemble"):
        ct2_dir = out / "final" / "alpha" / f"{name}-ct2-int8"
        assert (ct2_dir / "model.bin").is_file() and (ct2_dir / "tokenizer.json").is_file()
        hyps = read_manifest(out / "eval" / "alpha" / "hyps" / f"{name}_ct2_int8.jsonl")
        expected = transcribe(out / "final" / "alpha" / name, records, engine="ctranslate2", compute_type="int8",
                              max_new_tokens=cfg.evaluate.max_new_tokens, progress=False)
        assert [h["hypothesis"] for h in hyps] == [e["hypothesis"] for e in expected]
        metrics = json.loads((out / "eval" / "alpha" / "metrics" / f"{name}_ct2_int8.json").read_text())
        assert metrics["system"] == f"{name} (CT2 int8)" and metrics["wer"] == rows[metrics["system"]]
        assert metrics["n_utterances"] == 3
    # the rows join the target's table, with their paired difference to the system they deploy
    from asr_analogy.analogy.report import target_results

    table = {s["system"]: s for s in target_results(ctx, target_plan)["systems"]}
    assert table["syn2real_ct2_int8"]["label"] == "syn2real (CT2 int8)"
    assert table["syn2real_ct2_int8"]["wer"] == rows["syn2real (CT2 int8)"]
    assert "vs_C" in table["syn2real_ct2_int8"]["paired"]
    # A second call finds both rows cached: nothing is decoded again.
    messages.clear()
    assert score_deployed(ctx, target_plan, records) == rows and messages == []
