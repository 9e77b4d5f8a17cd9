"""The leakage guard covers every split rule and every named domain, and `--dry-run` enforces it (and that the
local inputs it names exist)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from tests.analogy.conftest import recipe_dict, write_config


def _dry_run(tmp_path, tiny_base, tiny_corpus, *sets):
    cfg = write_config(tmp_path / "recipe.yaml",
                       recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts_cache"))
    args = ["run", str(cfg), "--dry-run"]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert not (tmp_path / "exp").exists(), "a dry run wrote its output directory"
    return result


def test_the_valid_config_passes(tmp_path, tiny_base, tiny_corpus):
    result = _dry_run(tmp_path, tiny_base, tiny_corpus)
    assert result.exit_code == 0, result.output
    assert "domains in the corpus: alpha, beta, delta, gamma" in result.output


@pytest.mark.parametrize("sets, message", [
    (["evaluate.test_split=train"], "evaluate.test_split 'train' would score the target on text it was trained on "
                                    "(the models are fine-tuned on it)"),
    (["evaluate.test_split=dev", "synthesis.splits=[train, dev]"],
     "evaluate.test_split 'dev' would score the target on text it was trained on (its text is synthesized"),
    (["lambda.select_splits=[train]", "lambda.holdout_from_sources=false"],
     "lambda.select_splits: 'train' is not a held-out split"),
    (["lambda.select_splits=[dev, training]"], "lambda.select_splits: 'training' is not a held-out split"),
    (["evaluate.test_split=tset"], "evaluate.test_split: unknown split 'tset'"),
    (["domains.targets=[nosuch]"], "domains.targets ['nosuch'] not in the corpus (domains: alpha, beta, delta, gamma)"),
    (["lambda.pseudo_targets=[zeta]"], "lambda.pseudo_targets ['zeta'] not in the corpus"),
    (["base_model=/nonexistent/model"], "base_model /nonexistent/model does not exist"),
    (["corpus.manifest=/nonexistent.jsonl"], "corpus.manifest /nonexistent.jsonl does not exist"),
    (["lambda.grid=[0.0, .nan]"], "lambda.grid holds nan; every λ must be a finite number"),
    (["finetune.extra={train_manifest: /tmp/target_real.jsonl}"],
     "finetune.extra may not set train_manifest: the recipe plans each fine-tune's data"),
    (["evaluate.test_split=dev"], "evaluate.test_split 'dev' is the split the oracle λ is chosen on"),
])
def test_leaky_or_unknown_settings_are_refused_by_the_dry_run(tmp_path, tiny_base, tiny_corpus, sets, message):
    result = _dry_run(tmp_path, tiny_base, tiny_corpus, *sets)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_pseudo_target_train_audio_may_select_only_when_no_model_trains_on_it(tmp_path, tiny_base, tiny_corpus):
    # held out of the sources (the default), the pseudo-target's real train audio is trained on by nothing
    result = _dry_run(tmp_path, tiny_base, tiny_corpus, "lambda.select_splits=[train, dev, test]")
    assert result.exit_code == 0, result.output
    assert "by WER on its real train/dev/test audio (held out of the sources too)" in result.output


def test_a_fixed_domain_preparer_is_checked_before_preparing(tmp_path, tiny_base):
    cfg = recipe_dict(tiny_base, tmp_path / "unused.jsonl", tmp_path / "exp", tmp_path / "tts_cache",
                      domains={"targets": ["voicemial"]})
    cfg["corpus"] = {"preparer": "ivr_prompts"}
    path = write_config(tmp_path / "recipe.yaml", cfg)
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code != 0 and "domains.targets ['voicemial'] not in the corpus" in result.output
    assert not (tmp_path / "exp").exists()
