"""The recipe's calls into the other layers, in one place (imports are lazy: ``--dry-run`` and ``--help`` load
no model code). Each function states the contract it relies on."""

from __future__ import annotations

import os
from pathlib import Path

from asr_analogy.errors import ConfigError


def resolve_base_model(name: str) -> str:
    """``bundled:NAME`` → the imported bundled Whisper directory (imported once, cached); a local directory or
    a hub id is returned unchanged."""
    if name.startswith("bundled:"):
        from asr_analogy.speech.models.ct2_import import bundled_model_dir

        return str(bundled_model_dir(name.split(":", 1)[1]))
    return name


def prepare_corpus(preparer: str, out_dir: Path, *, from_dir=None, cache_dir=None, options: dict | None = None) -> Path:
    """``data_prep.PREPARERS[preparer].prepare(from_dir, out_dir, **options) -> manifest path``; a corpus that
    can be downloaded is fetched into ``cache_dir`` when ``from_dir`` is None."""
    from data_prep import PREPARERS

    if preparer not in PREPARERS:
        raise ConfigError(f"corpus.preparer '{preparer}': unknown; choose from {sorted(PREPARERS)} or 'manifest'")
    entry = PREPARERS[preparer]
    kwargs = dict(options or {})
    if entry.download is None:
        if from_dir is None:
            raise ConfigError(f"corpus.preparer '{preparer}' reads a local copy of the corpus: set corpus.from_dir")
    elif cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    return Path(entry.prepare(from_dir, out_dir, **kwargs))


def preparer_exists(preparer: str) -> bool:
    from data_prep import PREPARERS

    return preparer in PREPARERS


def preparer_domains(preparer: str) -> frozenset[str] | None:
    """The domains a preparer's corpus always has (``Preparer.domains``); None when unknown before preparing."""
    from data_prep import PREPARERS

    entry = PREPARERS.get(preparer)
    return entry.domains if entry else None


def hold_music_files(music_dir: str | None) -> list[Path]:
    """``data_prep.hold_music.music_files(music_dir)``, or of ``hold_music.download()`` (apt-get download of
    asterisk-moh-opsound-wav into the cache, no apt-get update) when ``music_dir`` is None."""
    from data_prep import hold_music

    return hold_music.music_files(music_dir if music_dir is not None else hold_music.download())


def register_tts_backend(backend: str) -> str:
    """A ``module:Class`` backend is registered under that string and its name returned; names pass through."""
    from asr_analogy.speech.tts.base import backend_class, register_backend

    if ":" in backend:
        register_backend(backend, backend)
    try:
        backend_class(backend)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"synthesis.backend '{backend}' cannot be imported ({exc})") from None
    return backend


def synthesize(records_manifest: Path, out_dir: Path, **kwargs) -> Path:
    """``asr_analogy.speech.tts.synthesize(manifest, out_dir, backend=, voices=, samples_per_sentence=, seed=,
    workers=, channel=, cache_dir=, keep_fields=True, ...) -> manifest path`` (records with source synthetic,
    voice, and the input's domain/split carried over)."""
    from asr_analogy.speech.tts import synthesize as tts_synthesize

    return Path(tts_synthesize(str(records_manifest), str(out_dir), keep_fields=True, **kwargs))


def finetune(values: dict) -> Path:
    """``asr_analogy.speech.train.finetune(FinetuneConfig(**values)) -> final model directory``."""
    from asr_analogy.speech.train import finetune as run_finetune, make_finetune_config

    return Path(run_finetune(make_finetune_config(values, "recipe finetune settings")))


def load_model(model_dir: str | os.PathLike, device: str = "cpu"):
    """``(model, processor)`` from a model directory (eval mode)."""
    from asr_analogy.speech.transcribe import load_asr_model

    return load_asr_model(model_dir, device)


def transcribe(model, records: list[dict], *, processor=None, out_jsonl=None, batch_size=16, num_beams=1, device="cpu",
               max_new_tokens=None, engine=None, repetition_guard=False):
    """``asr_analogy.speech.transcribe.transcribe`` on in-memory records; returns records with ``hypothesis``."""
    from asr_analogy.speech.transcribe import transcribe as run

    return run(
        model, [dict(r) for r in records], out_jsonl, processor=processor, batch_size=batch_size,
        num_beams=num_beams, device=device, max_new_tokens=max_new_tokens, progress=False, engine=engine,
        repetition_guard=repetition_guard,
    )


def export_ct2(model_dir, out_dir, quantization: str) -> Path:
    """``asr_analogy.speech.models.ct2_export.export_ct2`` (replacing ``out_dir``)."""
    from asr_analogy.speech.models.ct2_export import export_ct2 as run

    return run(model_dir, out_dir, quantization, force=True)


def score(records: list[dict], *, normalizer: str, bootstrap: int = 0, seed: int = 0, out_json=None) -> dict:
    """``asr_analogy.speech.metrics.evaluate(records, out_json, normalizer=, by="domain", bootstrap=, seed=)``:
    dict with ``wer``, ``cer`` (fractions), ``wer_ci95`` (low, high), ``n_utterances``, ``per_group``."""
    from asr_analogy.speech.metrics import evaluate

    return evaluate(records, out_json, normalizer=normalizer, by="domain", bootstrap=bootstrap, seed=seed)
