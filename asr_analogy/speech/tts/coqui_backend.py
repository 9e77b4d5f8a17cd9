"""Coqui TTS (pip ``coqui-tts``, the maintained fork; extra ``asr-analogy[coqui]``).

Coqui imports torchaudio, which needs a torch build it matches; where that import fails the backend raises
``BackendUnavailableError`` with the import error, and nothing else is affected.

Options: ``model_name`` (a Coqui model id such as ``tts_models/en/ljspeech/vits``, fetched by Coqui into its
own cache when the network allows) or ``model_path`` + ``config_path`` (local files), ``device`` ("cpu").
Voices: ``default``, the model's speakers for multi-speaker models, and ``SPEAKER@LANGUAGE`` for multilingual
ones. Speed is passed to models that take it (``speed``); otherwise the base class stretches the audio.
Seeded with ``torch.manual_seed`` inside ``torch.random.fork_rng``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_analogy.speech.tts.base import BackendUnavailableError, TTSBackend, VoiceNotFoundError
from asr_analogy.speech.tts.base import _voice_message, file_digest, package_version


def import_coqui():
    """``TTS.api.TTS``; ``BackendUnavailableError`` with the reason when coqui-tts or torchaudio cannot load."""
    try:
        from TTS.api import TTS
    except Exception as exc:  # ImportError, or an OSError from a torchaudio built for another torch
        raise BackendUnavailableError(
            f"coqui: cannot import Coqui TTS ({type(exc).__name__}: {exc}); install the extra "
            "`pip install 'asr-analogy[coqui]'` with a torchaudio matching your torch"
        ) from None
    return TTS


class CoquiBackend(TTSBackend):
    """Coqui TTS models (see the module docstring for options)."""

    name = "coqui"
    default_voice = "default"
    native_speed = False
    native_pitch = False

    def __init__(self, model_name: str | None = None, model_path: str | None = None, config_path: str | None = None,
                 device: str = "cpu", threads: int = 1, **options) -> None:
        if not model_name and not (model_path and config_path):
            raise BackendUnavailableError(
                "coqui: pass model_name (e.g. tts_models/en/ljspeech/vits) or both model_path and config_path"
            )
        given = dict(model_name=model_name, model_path=model_path, config_path=config_path)
        super().__init__(**{k: v for k, v in given.items() if v}, device=device, threads=int(threads), **options)
        for key in ("model_path", "config_path"):
            if given[key] and not Path(given[key]).expanduser().is_file():
                raise BackendUnavailableError(f"coqui: {key} {given[key]} does not exist")
        self._tts_class = import_coqui()
        self.device = device
        self.threads = int(threads)
        self._tts = None

    def _engine(self):
        if self._tts is None:
            import torch

            torch.set_num_threads(max(1, self.threads))
            o = self.options
            if o.get("model_name"):
                self._tts = self._tts_class(model_name=o["model_name"], progress_bar=False)
            else:
                self._tts = self._tts_class(model_path=o["model_path"], config_path=o["config_path"], progress_bar=False)
            self._tts.to(self.device)
        return self._tts

    def list_voices(self) -> list[str]:
        tts = self._engine()
        speakers = list(getattr(tts, "speakers", None) or [])
        languages = list(getattr(tts, "languages", None) or [])
        if languages:
            return [f"{s}@{lang}" for s in (speakers or ["default"]) for lang in languages]
        return speakers or ["default"]

    def check_voice(self, voice: str | None) -> str:
        available = self.list_voices()
        voice = (available[0] if available else "default") if voice is None else str(voice)
        if voice not in available:
            raise VoiceNotFoundError(_voice_message(self.name, voice, available))
        return voice

    def version(self) -> str:
        o = self.options
        ident = o.get("model_name") or f"{file_digest(o['model_path'])[:16]}-{file_digest(o['config_path'])[:16]}"
        return f"coqui-tts {package_version('coqui-tts')}; {ident}"

    def cache_options(self) -> dict:
        return {}

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        import torch

        tts = self._engine()
        speaker, _, language = voice.partition("@")
        kwargs = {}
        if speaker != "default":
            kwargs["speaker"] = speaker
        if language:
            kwargs["language"] = language
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            audio = tts.tts(text=text, **kwargs)
        sr = int(tts.synthesizer.output_sample_rate)
        return np.asarray(audio, dtype=np.float32), sr
