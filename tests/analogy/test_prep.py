"""The prep stage: corpus checks before anything is written, and the optional degradation of real audio."""

from __future__ import annotations

import numpy as np
import pytest

from asr_analogy.analogy.config import load_recipe_config
from asr_analogy.analogy.recipe import Syn2RealRecipe
from asr_analogy.errors import ConfigError, ManifestError
from asr_analogy.io.audio import load_audio, write_wav
from asr_analogy.io.manifest import read_manifest, write_manifest
from asr_analogy.io.yaml_file import parse_overrides
from tests.analogy.conftest import recipe_dict, write_config


def _recipe(cfg_path, *sets):
    return Syn2RealRecipe(load_recipe_config(cfg_path, overrides=parse_overrides(list(sets)) or None), echo=lambda m: None)


def test_degrade_rewrites_every_real_clip_through_the_channel(tmp_path, tiny_base, tiny_corpus):
    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    r = _recipe(cfg, "corpus.degrade=noise:snr_db=10")
    r.run(stop_stage="prep")
    recs = read_manifest(r.real_manifest)
    originals = {x["id"]: x for x in read_manifest(tiny_corpus)}
    assert len(recs) == len(originals) and all(x["degraded"] == "noise:snr_db=10" for x in recs)
    x = recs[0]
    noisy, clean = load_audio(x["audio_filepath"]), load_audio(originals[x["id"]]["audio_filepath"])
    assert "degraded" in x["audio_filepath"] and noisy.shape == clean.shape
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)  # 16-bit rounding of the written wav


def test_bad_corpus_input_writes_nothing(tmp_path, tiny_base, tiny_corpus):
    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    with pytest.raises(ConfigError, match="noize"):
        _recipe(cfg, "corpus.degrade=noize:snr_db=10").run(stop_stage="prep")
    recs = read_manifest(tiny_corpus)
    no_split = write_manifest([{k: v for k, v in recs[0].items() if k != "split"}] + recs[1:], tmp_path / "m.jsonl",
                              relative=False)
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: the recipe needs a 'split'"):
        _recipe(cfg, f"corpus.manifest={no_split}").run(stop_stage="prep")
    exp = tmp_path / "exp" / "tiny"
    assert not (exp / "data").exists() and not (exp / "stages").exists()


def test_real_conditions_reach_every_domain_and_split_and_are_named(tmp_path, tiny_base, tiny_corpus):
    """Music from corpus.music_dir and babble from other utterances: every real clip is rewritten, babble comes
    only from non-target, non-pseudo-target domains of another (non-test) split, and the marker names the
    condition in words."""
    from asr_analogy.analogy.stages.base import read_marker

    music = tmp_path / "music"
    t = np.arange(16000 * 2) / 16000
    write_wav(music / "a.wav", (0.3 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 1.5 * t)).astype(np.float32))
    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    r = _recipe(cfg, "corpus.degrade=music:snr_db=5+babble:snr_db=10,talkers=2", f"corpus.music_dir={music}")
    r.run(stop_stage="prep")
    recs = read_manifest(r.real_manifest)
    originals = {f"{x['domain']}/{x['id']}": x for x in read_manifest(tiny_corpus)}
    assert len(recs) == len(originals) and {x["domain"] for x in recs} == {"alpha", "beta", "gamma", "delta"}
    for x in recs:
        assert x["drawn"]["music"][0].startswith("a.wav@")
        (ids,) = x["drawn"]["babble"]
        assert len(ids) == 2
        for key in ids:
            donor = originals[key]
            assert donor["domain"] not in ("alpha", "beta")  # the target and the pseudo-target
            assert donor["split"] not in (x["split"], "test")
        assert not np.array_equal(load_audio(x["audio_filepath"]),
                                  load_audio(originals[f"{x['domain']}/{x['id']}"]["audio_filepath"]))
    summary = read_marker(r.out, "prep")["summary"]
    assert summary["condition"] == ("real speech and real hold music, mixed by the recipe at 5 dB SNR, then real "
                                    "babble (2 other real utterances of source domains), mixed by the recipe at "
                                    "10 dB SNR; TTS audio clean")


@pytest.mark.parametrize("value, match", [
    ("musik:snr_db=5", r"key 'corpus\.degrade': channel step 'musik:snr_db=5': unknown type 'musik'"),
    ("music", r"key 'corpus\.degrade': channel step 'music': missing key 'snr_db'"),
    ("babble:snr_db=5,talkers=0", r"key 'corpus\.degrade': .*'talkers' must be at least 1"),
])
def test_bad_conditions_are_refused_at_load_naming_the_key_and_file(tmp_path, tiny_base, tiny_corpus, value, match):
    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    with pytest.raises(ConfigError, match=r"r\.yaml with --set overrides: " + match):
        _recipe(cfg, f"corpus.degrade={value}")


def test_babble_never_uses_the_pseudo_target_the_plan_picks(tmp_path, tiny_base, tiny_corpus):
    """Without lambda.pseudo_targets the plan picks the largest source domain; its clips (on whose real audio λ
    is chosen) are never mixed into other clips as babble."""
    from asr_analogy.analogy.plan import domain_counts, resolve_domains

    cfg = write_config(tmp_path / "r.yaml", recipe_dict(tiny_base, tiny_corpus, tmp_path / "exp", tmp_path / "tts"))
    r = _recipe(cfg, "corpus.degrade=babble:snr_db=10,talkers=2", "lambda.pseudo_targets=null")
    (picked,) = resolve_domains(r.cfg, domain_counts(read_manifest(tiny_corpus), "train"))["alpha"]["pseudo"]
    r.run(stop_stage="prep")
    donors = {key.split("/")[0] for x in read_manifest(r.real_manifest) for key in x["drawn"]["babble"][0]}
    assert donors and picked not in donors and "alpha" not in donors
