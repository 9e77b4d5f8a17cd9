"""Fixtures for the syn2real tests: a tiny random Whisper, a generated "real" corpus, a recipe config, and one
end-to-end run of the recipe through the CLI shared by several tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.analogy.fake_tts import SR, word_tone

REPO = Path(__file__).resolve().parents[2]
WORDS = ["press", "one", "two", "mailbox", "message", "please", "call", "agent", "queue", "menu", "hold", "record"]
DOMAINS = {"alpha": 0, "beta": 1, "gamma": 2, "delta": 3}
PER_SPLIT = {"train": 6, "dev": 2, "test": 3}


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A random 2-layer Whisper (d_model 64) with the bundled English tokenizer, saved with save_pretrained."""
    from asr_analogy.speech.models.whisper import tiny_whisper

    out = tmp_path_factory.mktemp("tiny_base") / "model"
    model, processor = tiny_whisper(seed=0)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_corpus(root: Path) -> Path:
    """Four domains of "real" speech: word chords at 240 Hz with noise; 6 train, 2 dev, 3 test per domain."""
    from asr_analogy.io.audio import write_wav
    from asr_analogy.io.manifest import write_manifest

    rng = np.random.default_rng(0)
    records = []
    for domain, d in DOMAINS.items():
        for split, n in PER_SPLIT.items():
            for i in range(n):
                words = [WORDS[(d * 3 + i + j * 5 + len(split)) % len(WORDS)] for j in range(2 + (i % 3))]
                text = " ".join(words)
                audio = np.concatenate([word_tone(w, 240.0) for w in words])
                audio = (audio + 0.01 * rng.standard_normal(audio.size)).astype(np.float32)
                uid = f"{domain}-{split}-{i}"
                path = write_wav(root / "audio" / f"{uid}.wav", audio, SR)
                records.append({"audio_filepath": str(path), "text": text, "duration": audio.size / SR,
                                "domain": domain, "split": split, "source": "real", "speaker": "tester", "id": uid})
    return write_manifest(records, root / "manifest.jsonl")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("tiny_corpus"))


def recipe_dict(base: Path, corpus: Path, exp_dir: Path, tts_cache: Path, **over) -> dict:
    cfg = {
        "name": "tiny",
        "exp_dir": str(exp_dir),
        "base_model": str(base),
        "corpus": {"preparer": "manifest", "manifest": str(corpus)},
        "domains": {"targets": ["alpha"], "source_pool": "shared"},
        "synthesis": {"backend": "tests.analogy.fake_tts:ToneBackend", "voices": ["low", "high"], "workers": 1,
                      "cache_dir": str(tts_cache)},
        "finetune": {"learning_rate": 1.0e-3, "max_steps": 2, "batch_size": 4, "audio_context_s": 2,
                     "target_stage": {"lr_scale": 0.5, "max_steps": 1}, "extra": {"logging_steps": 1}},
        "ensemble": {"enabled": True, "by": "voice"},
        "lambda": {"mode": "pseudo_target", "pseudo_targets": ["beta"], "grid": [0.0, 0.5, 1.0],
                   "select_splits": ["dev", "test"], "report_oracle": True},
        "evaluate": {"bootstrap": 50, "batch_size": 8, "max_new_tokens": 6},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory, tiny_base, tiny_corpus):
    """The whole recipe run once through `asr-analogy run` (in process); returns (config path, exp dir, output)."""
    from click.testing import CliRunner

    from asr_analogy.cli import main

    root = tmp_path_factory.mktemp("e2e")
    cfg = write_config(root / "recipe.yaml", recipe_dict(tiny_base, tiny_corpus, root / "exp", root / "tts_cache"))
    result = CliRunner().invoke(main, ["run", str(cfg)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return cfg, root / "exp" / "tiny", result.output
