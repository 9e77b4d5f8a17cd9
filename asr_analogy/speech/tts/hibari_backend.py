"""hibari (small Kokoro-distilled ONNX voices) through pip ``hibari-tts``.

Voices: ``heart`` (American English, female) ships inside the package. The others (``fenrir``, ``emma``,
``fable``, ``kore``) are usable once they sit in hibari's cache (``HIBARI_HOME`` or ``~/.cache/hibari``);
this backend never downloads them unless built with ``download=True``. Output is 24 kHz.

Seeded: hibari's vocoder draws a noise component from ``numpy.random.default_rng(seed)``, so the same
(text, voice, seed, speed) gives the same audio. Speed is native (0.5..2.0); pitch is applied afterwards.
"""

from __future__ import annotations

import os

from asr_analogy.speech.tts.base import BackendUnavailableError, TTSBackend, VoiceNotFoundError
from asr_analogy.speech.tts.base import _voice_message, file_digest, package_version


class HibariBackend(TTSBackend):
    """hibari voices. Options: ``download`` (fetch missing voices from the hub, default False),
    ``threads`` (onnxruntime threads, default 1)."""

    name = "hibari"
    default_voice = "heart"
    native_speed = True
    native_pitch = False

    def __init__(self, download: bool = False, threads: int = 1, **options) -> None:
        super().__init__(download=bool(download), threads=int(threads), **options)
        try:
            import hibari  # noqa: F401
            from hibari import voices
        except ImportError as exc:
            raise BackendUnavailableError(f"hibari: pip package hibari-tts is not installed ({exc})") from None
        self._voices = voices
        self.download = bool(download)
        self.threads = int(threads)
        self._engines: dict = {}

    def _installed(self, name: str) -> bool:
        spec = self._voices.VOICES[name]
        return bool(spec.get("bundled")) or os.path.exists(os.path.join(self._voices.cache_dir(), spec["file"]))

    def list_voices(self) -> list[str]:
        return [name for name in self._voices.VOICES if self._installed(name)]

    def check_voice(self, voice: str | None) -> str:
        voice = self.default_voice if voice is None else str(voice)
        if voice not in self._voices.VOICES:
            raise VoiceNotFoundError(_voice_message(self.name, voice, self.list_voices()))
        if not self._installed(voice) and not self.download:
            raise VoiceNotFoundError(
                _voice_message(
                    self.name, voice, self.list_voices(),
                    f"{voice!r} is a hibari voice that is not downloaded; build the backend with download=True "
                    f"(CLI: --option download=true) to fetch it into {self._voices.cache_dir()}",
                )
            )
        return voice

    def version(self) -> str:
        return f"hibari-tts {package_version('hibari-tts')}"

    def voice_identity(self, voice: str) -> str:
        path = self._voices.voice_path(voice, download_missing=False) if self._installed(voice) else ""
        return file_digest(path)[:16] if path else ""

    def cache_options(self) -> dict:
        return {}

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        from hibari import SAMPLE_RATE, Hibari

        if voice not in self._engines:
            self._engines[voice] = Hibari(voice=voice, threads=max(1, self.threads))
        audio = self._engines[voice](text, speed=float(min(2.0, max(0.5, speed))), seed=int(seed))
        return audio, int(SAMPLE_RATE)
