"""The finetune stage's bookkeeping with the trainer replaced by a copy: which jobs run, skip or rerun."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.config import load_recipe_config
from asr_analogy.analogy.recipe import Syn2RealRecipe
from asr_analogy.io.yaml_file import parse_overrides
from tests.analogy.conftest import recipe_dict, write_config


@pytest.fixture
def fake_finetune(monkeypatch, tiny_base):
    calls = []

    def fake(values):
        calls.append(values)
        out = Path(values["output_dir"])
        shutil.copytree(tiny_base, out)
        return out

    monkeypatch.setattr(_deps, "finetune", fake)
    return calls


def _recipe(cfg_path, *sets):
    return Syn2RealRecipe(load_recipe_config(cfg_path, overrides=parse_overrides(list(sets)) or None), echo=lambda m: None)


def test_jobs_skip_when_unchanged_and_rerun_when_data_or_settings_change(tmp_path, tiny_base, tiny_corpus, fake_finetune):
    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    _recipe(cfg).run(stop_stage="finetune")
    first = {Path(v["output_dir"]).parent.name.split("-")[0] for v in fake_finetune}
    assert len(fake_finetune) == 8 and first == {"A", "A_voice", "B", "S", "C", "UB"}
    # every job starts from the base or from S, with the configured schedule
    by_role = {Path(v["output_dir"]).parent.name.split("-")[0]: v for v in fake_finetune}
    assert by_role["C"]["learning_rate"] == pytest.approx(1e-3 * 0.5) and by_role["C"]["max_steps"] == 1
    assert by_role["C"]["model"].endswith("/model") and "/S-" in by_role["C"]["model"]
    assert by_role["A"]["model"] == str(tiny_base) and by_role["A"]["max_steps"] == 2
    assert by_role["A"]["audio_context_s"] == 2

    fake_finetune.clear()
    _recipe(cfg).run(from_stage="finetune", stop_stage="finetune")
    assert fake_finetune == []  # same fingerprints: nothing retrained

    # other synthetic audio (a new TTS seed): every model that saw synthetic speech, or starts from one that did,
    # is retrained; B (real speech only) is not
    fake_finetune.clear()
    _recipe(cfg, "synthesis.seed=1").run(stop_stage="finetune")
    rerun = sorted(Path(v["output_dir"]).parent.name.split("-")[0] for v in fake_finetune)
    assert rerun == ["A", "A_voice", "A_voice", "C", "C", "S", "UB"]

    # another fine-tuning setting: everything is retrained
    fake_finetune.clear()
    _recipe(cfg, "synthesis.seed=1", "finetune.batch_size=2").run(stop_stage="finetune")
    assert len(fake_finetune) == 8 and {v["batch_size"] for v in fake_finetune} == {2}


def test_stale_checkpoints_of_another_config_are_removed(tmp_path, tiny_base, tiny_corpus, fake_finetune):
    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    r = _recipe(cfg)
    r.run(stop_stage="finetune")
    job = r.plan().jobs[r.plan().targets[0].main.B]
    jdir = r.out / "models" / job.dirname
    (jdir / "job.json").unlink()  # as if killed before finishing, under other settings:
    (jdir / "pending.json").write_text('{"fingerprint": "other"}')
    (jdir / "model.checkpoints").mkdir()
    fake_finetune.clear()
    _recipe(cfg).run(from_stage="finetune", stop_stage="finetune")
    assert [Path(v["output_dir"]).parent.name for v in fake_finetune] == [job.dirname]
    assert not (jdir / "model.checkpoints").exists()
