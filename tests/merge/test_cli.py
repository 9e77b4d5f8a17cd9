"""The real CLI on a tiny random Llama: merge, reload with AutoModelForCausalLM, vector / apply-vector."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from asr_analogy.io.checkpoint import load_state_dict
from asr_analogy.cli import main
from asr_analogy.ops import combine_deltas, magnitude, task_vector

REPO = Path(__file__).resolve().parents[2]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "asr_analogy", *map(str, args)], capture_output=True, text=True, cwd=REPO)


@pytest.mark.spawns
def test_ties_merge_through_the_cli_reloads_with_transformers(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = tmp_path / "ties.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        merge_method: ties
        base_model: {tiny_llama['base']}
        models:
          - model: {tiny_llama['ft0']}
            parameters: {{weight: 1.0, density: 0.5}}
          - model: {tiny_llama['ft1']}
            parameters: {{weight: 0.6, density: 0.3}}
        parameters: {{lambda: 0.9}}
        dtype: float32
        """))
    out = tmp_path / "merged"
    proc = cli("merge", cfg, out, "--shard-size", "100KB", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert len(list(out.glob("model-*-of-*.safetensors"))) > 1 and (out / "model.safetensors.index.json").is_file()
    assert (out / "config.json").is_file() and (out / "generation_config.json").is_file()

    model = AutoModelForCausalLM.from_pretrained(out)
    base = load_state_dict(tiny_llama["base"])
    fts = [load_state_dict(tiny_llama["ft0"]), load_state_dict(tiny_llama["ft1"])]
    merged = model.state_dict()
    for name, b in base.items():
        deltas = [task_vector(ft[name], b) for ft in fts]
        # TIES with per-model densities: trim each with its own density, then elect and average
        trimmed = [magnitude(deltas[0], 0.5), magnitude(deltas[1], 0.3)]
        expected = b + combine_deltas(trimmed, [1.0, 0.6], consensus="sum", normalize=True, lam=0.9)
        assert_close(merged[name], expected, rtol=0, atol=1e-6)
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 128) and torch.isfinite(logits).all()


def invoke(*args):
    """The click command in-process (the subprocess path is covered above)."""
    from click.testing import CliRunner

    return CliRunner().invoke(main, [str(a) for a in args])


def test_vector_and_apply_vector_through_the_cli(tiny_llama, tmp_path):
    tau = tmp_path / "tau.safetensors"
    result = invoke("vector", tiny_llama["ft0"], tiny_llama["base"], tau, "--quiet")
    assert result.exit_code == 0, result.output
    from asr_analogy.merge import read_vector_metadata

    meta = read_vector_metadata(tau)
    assert meta["method"] == "finetuned - base" and int(meta["tensor_count"]) == len(load_state_dict(tiny_llama["base"]))
    out = tmp_path / "applied"
    result = invoke("apply-vector", tiny_llama["base"], tau, out, "--scale", "0.5", "--quiet")
    assert result.exit_code == 0, result.output
    base, ft = load_state_dict(tiny_llama["base"]), load_state_dict(tiny_llama["ft0"])
    got = load_state_dict(out)
    name = "model.layers.1.mlp.down_proj.weight"
    assert_close(got[name], base[name] + 0.5 * (ft[name] - base[name]))
    # applying it to another model is refused unless asked for
    result = invoke("apply-vector", tiny_llama["ft1"], tau, tmp_path / "other", "--quiet")
    assert result.exit_code == 2 and "fingerprint" in result.output and "--allow-other-base" in result.output
    assert not (tmp_path / "other").exists()


def test_the_library_leaves_the_allocator_alone_and_the_cli_opts_in(models, tmp_path, monkeypatch):
    import ctypes

    from click.testing import CliRunner

    import asr_analogy.merge as merge_pkg
    from asr_analogy.merge import apply_vector, merge, stream, vector

    def refuse(*args, **kwargs):
        raise AssertionError("a library call tuned the process allocator")

    monkeypatch.setattr(stream, "_MALLOC_TUNED", False)  # as in a fresh process
    monkeypatch.setattr(stream, "tune_malloc", refuse)
    monkeypatch.setattr(merge_pkg, "tune_malloc", refuse)
    monkeypatch.setattr(ctypes, "CDLL", refuse)  # what tune_malloc itself would reach for
    cfg = {"merge_method": "task_arithmetic", "base_model": str(models["base"]), "models": [{"model": str(models["a"])}]}
    merge(cfg, tmp_path / "merged", progress=False)
    tau = vector(models["a"], models["base"], tmp_path / "tau.safetensors", progress=False)
    apply_vector(models["base"], tau, tmp_path / "applied", progress=False)

    calls = []
    monkeypatch.setattr(merge_pkg, "tune_malloc", lambda: calls.append("tuned"))
    config = tmp_path / "ta.yaml"
    config.write_text(f"merge_method: task_arithmetic\nbase_model: {models['base']}\nmodels: [{{model: {models['a']}}}]\n")
    for args in (["merge", config, tmp_path / "cli_merged"], ["vector", models["a"], models["base"], tmp_path / "v.safetensors"],
                 ["apply-vector", models["base"], tmp_path / "v.safetensors", tmp_path / "cli_applied"]):
        result = CliRunner().invoke(main, [*map(str, args), "--quiet"])
        assert result.exit_code == 0, result.output
    assert calls == ["tuned"] * 3
