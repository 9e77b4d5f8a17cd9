"""The recipe through the CLI: dry runs of both recipes, config errors, and a killed run resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from asr_analogy.analogy.stages import STAGE_NAMES
from asr_analogy.cli import main
from asr_analogy.io.manifest import read_manifest
from tests.analogy.conftest import REPO, recipe_dict, write_config



def _invoke(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args)
    finally:
        os.chdir(old)


def test_dry_run_of_the_ivr_recipe_and_the_demo_write_nothing(tmp_path):
    for args, pseudo in ((["run", str(REPO / "recipes" / "ivr_syn2real" / "config.yaml"), "--dry-run"], "digits"),
                         (["demo", "--dry-run"], "call_handling")):
        r = _invoke(args, tmp_path)
        assert r.exit_code == 0, r.output
        assert "valid" in r.output.splitlines()[0]
        for i, stage in enumerate(STAGE_NAMES, 1):
            assert f"{i}. {stage}" in r.output
        assert "bundled:tiny.en" in r.output and f"pseudo-target: hold out {pseudo}" in r.output
    # the demo: one target in the real-music condition, the three C baselines, every target utterance scored
    assert "targets: voicemail;" in r.output and "every clip through 'music:snr_db=5'" in r.output
    assert "baselines beside C: C_tts, C_multi" in r.output
    assert "systems base, C, syn2real, C_tts, C_tts_syn2real, C_multi, C_multi_syn2real, best on all target real" in r.output
    r = _invoke(["demo", "--variant", "demo_noisy", "--dry-run"], tmp_path)
    assert r.exit_code == 0, r.output
    assert "every clip through 'noise:snr_db=10'" in r.output and "C: from base" in r.output
    assert "outputs: exp/ivr_syn2real_noisy/" in r.output
    r = _invoke(["demo", "--variant", "nope", "--dry-run"], tmp_path)
    assert r.exit_code == 2 and "no variant 'nope'" in r.output
    assert list(tmp_path.iterdir()) == []


def test_dry_run_of_the_slurp_recipe(tmp_path):
    cfg = str(REPO / "recipes" / "slurp_syn2real" / "config.yaml")
    for variant, model, lr in ((None, "openai/whisper-tiny", "3e-05"), ("base", "openai/whisper-base", "2e-05"),
                               ("small", "openai/whisper-small", "1e-05")):
        r = _invoke(["run", cfg, "--dry-run"] + (["--variant", variant] if variant else []), tmp_path)
        assert r.exit_code == 0, r.output
        assert f"base model: {model}" in r.output and f"lr {lr}, 5.0 epochs, batch 16" in r.output
        assert "targets: cooking, weather, social, music" in r.output
        assert "5 sample(s)/sentence" in r.output
    assert list(tmp_path.iterdir()) == []


def test_dry_run_lists_the_concrete_jobs_once_the_corpus_is_prepared(e2e_run):
    cfg, exp, _ = e2e_run
    r = _invoke(["run", str(cfg), "--dry-run"], exp.parent.parent)
    assert r.exit_code == 0, r.output
    assert r.output.count("[skip (complete)]") == 7
    assert "S-" in r.output and "UB-" in r.output and "A_voice-" in r.output


def test_config_errors_exit_2_naming_key_and_file_and_write_nothing(tmp_path, tiny_base, tiny_corpus):
    data = recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts")
    data["finetune"]["lr"] = 1e-3
    cfg = write_config(tmp_path / "bad.yaml", data)
    r = _invoke(["run", str(cfg)], tmp_path)
    assert r.exit_code == 2
    assert "error:" in r.output and "bad.yaml" in r.output and "unknown key 'finetune.lr'" in r.output
    r = _invoke(["run", str(cfg), "--dry-run"], tmp_path)
    assert r.exit_code == 2
    good = write_config(tmp_path / "good.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    r = _invoke(["run", str(good), "--from-stage", "vectorz"], tmp_path)
    assert r.exit_code == 2 and "'vectorz' is not a stage" in r.output
    r = _invoke(["run", str(good), "--from-stage", "vectors"], tmp_path)
    assert r.exit_code == 2 and "earlier stage(s) prep, synthesize, finetune are not complete" in r.output
    r = _invoke(["run", str(good), "--set", "domains.targets=[omega]"], tmp_path)
    assert r.exit_code == 2 and "['omega'] not in the corpus" in r.output
    assert not (tmp_path / "exp" / "tiny" / "stages").exists() or not any((tmp_path / "exp" / "tiny" / "stages").iterdir())


def _system_table(exp: Path) -> dict:
    res = json.loads((exp / "results.json").read_text())
    return {(t, s["system"]): (s["wer"], s["cer"], s.get("lambda")) for t, e in res["targets"].items() for s in e["systems"]}


def test_a_run_killed_during_finetuning_resumes_to_the_same_result(tmp_path, tiny_base, tiny_corpus, e2e_run):
    _, ref_exp, _ = e2e_run
    cfg = write_config(tmp_path / "recipe.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    exp = tmp_path / "exp" / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "asr_analogy", "run", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None and not list((exp / "models").glob("*/job.json")):
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (exp / "stages" / "synthesize.done.json").is_file()
    assert not (exp / "stages" / "finetune.done.json").exists(), "the run finished before it could be killed"
    done_before = {p.parent.name for p in (exp / "models").glob("*/job.json")}
    assert done_before

    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[prep] complete, skipped" in r.stdout and "[synthesize] complete, skipped" in r.stdout
    for name in done_before:
        assert f"{name} complete, skipped" in r.stdout
    assert _system_table(exp) == _system_table(ref_exp)
    for hyps in (ref_exp / "eval" / "alpha" / "hyps").glob("*.jsonl"):
        ours = read_manifest(exp / "eval" / "alpha" / "hyps" / hyps.name)
        assert [h["hypothesis"] for h in ours] == [h["hypothesis"] for h in read_manifest(hyps)], hyps.name
    # and a third run finds everything complete
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("complete, skipped") == 7
