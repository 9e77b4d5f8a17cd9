"""The TTS backend interface, its errors, and the registry of named backends.

A backend turns one sentence into audio::

    backend = get_backend("espeak")
    audio, sr = backend.synthesize("Please hold.", "en-us+f2", seed=0, speed=1.1, pitch=2.0)
    # audio: float32, mono, shape (samples,), values in [-1, 1]; sr in Hz (the backend's native rate)

Construction is cheap (options are checked, paths resolved); models load on the first ``synthesize``. That lets
``synthesize()`` list and check voices and compute cache keys in the parent process while worker processes
hold the loaded models.

Parameters shared by every backend:

| parameter | unit / range                     | meaning                                                     |
|-----------|----------------------------------|-------------------------------------------------------------|
| seed      | int                              | fixes every random draw, so the same call gives the same audio |
| speed     | factor, > 0 (1.0 = voice's pace) | 1.25 speaks 25 % faster, i.e. about 0.8x the duration       |
| pitch     | semitones (0.0 = voice's pitch)  | shift of the fundamental; +12 is one octave up             |

A backend with ``native_speed`` / ``native_pitch`` false gets the parameter applied afterwards by time-stretching
/ pitch-shifting the audio (librosa phase vocoder), so every backend honours all three.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from asr_analogy.errors import AsrAnalogyError, ConfigError


class TTSError(AsrAnalogyError):
    """Synthesis failed: the backend raised, or returned no usable audio."""


class BackendUnavailableError(TTSError):
    """A backend's package, binary or model files are not installed. The message says what to install."""


class VoiceNotFoundError(TTSError):
    """A requested voice is not installed. The message lists the voices that are."""


class TextError(TTSError):
    """Text that cannot be spoken. ``reason``: ``empty_text``, ``no_words`` (symbols only) or
    ``unsupported_characters``."""

    def __init__(self, message: str, reason: str = "empty_text") -> None:
        super().__init__(message)
        self.reason = reason


class TTSBackend(ABC):
    """One text-to-speech engine. Subclasses set ``name``, implement ``list_voices`` and ``_synthesize``.

    ``options`` are the keyword arguments the backend was built with; ``get_backend(name, **options)``
    rebuilds an equal backend in a worker process. ``cache_options()`` is the subset that changes the audio
    (the cache key uses it; thread counts and devices are left out).
    """

    name: ClassVar[str] = ""
    default_voice: ClassVar[str] = "default"
    native_speed: ClassVar[bool] = True
    native_pitch: ClassVar[bool] = False
    runtime_options: ClassVar[tuple[str, ...]] = ("threads", "device")

    def __init__(self, **options) -> None:
        self.options = dict(options)

    # -- voices -------------------------------------------------------------------------------------------
    @abstractmethod
    def list_voices(self) -> list[str]:
        """Voices usable now, without downloading anything."""

    def check_voice(self, voice: str | None) -> str:
        """Return the canonical id of ``voice`` (``None`` → the default voice); raise ``VoiceNotFoundError``."""
        voice = self.default_voice if voice is None else str(voice)
        available = self.list_voices()
        if voice not in available:
            raise VoiceNotFoundError(_voice_message(self.name, voice, available))
        return voice

    # -- identity for the cache ---------------------------------------------------------------------------
    def version(self) -> str:
        """Package and model identity; part of the cache key so an upgrade re-synthesizes."""
        return self.name

    def voice_identity(self, voice: str) -> str:
        """Identity of a voice's model files (e.g. a digest); part of the cache key. Default: empty."""
        return ""

    def cache_options(self) -> dict:
        """Options that change the audio (everything but ``runtime_options``)."""
        return {k: v for k, v in sorted(self.options.items()) if k not in self.runtime_options}

    # -- synthesis ----------------------------------------------------------------------------------------
    @abstractmethod
    def _synthesize(self, text: str, voice: str, *, seed: int, speed: float, pitch: float) -> tuple[np.ndarray, int]:
        """Backend-specific synthesis. ``speed``/``pitch`` are 1.0/0.0 unless ``native_speed``/``native_pitch``."""

    def synthesize(
        self, text: str, voice: str | None = None, *, seed: int = 0, speed: float = 1.0, pitch: float = 0.0
    ) -> tuple[np.ndarray, int]:
        """Speak ``text`` with ``voice``. Returns (float32 mono audio of shape (samples,), sample rate in Hz).

        ``seed`` fixes the random draws; ``speed`` is a factor (1.0 = the voice's pace); ``pitch`` is a shift
        in semitones. Raises ``TextError`` for blank text, ``VoiceNotFoundError``, ``TTSError`` when the
        engine returns no audio or non-finite samples.
        """
        if not text or not text.strip():
            raise TextError(f"{self.name}: nothing to say (empty text)")
        if not (isinstance(speed, (int, float)) and 0.25 <= speed <= 4.0):
            raise ConfigError(f"{self.name}: speed must be a factor in [0.25, 4], got {speed!r}")
        if not (isinstance(pitch, (int, float)) and -24.0 <= pitch <= 24.0):
            raise ConfigError(f"{self.name}: pitch must be a shift in semitones in [-24, 24], got {pitch!r}")
        voice = self.check_voice(voice)
        audio, sr = self._synthesize(
            text,
            voice,
            seed=int(seed),
            speed=float(speed) if self.native_speed else 1.0,
            pitch=float(pitch) if self.native_pitch else 0.0,
        )
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2:  # (channels, samples) or (samples, channels): down-mix the short axis
            audio = audio.mean(axis=0 if audio.shape[0] < audio.shape[1] else 1)
        audio = audio.reshape(-1)
        if audio.size == 0:
            raise TTSError(f"{self.name}: voice {voice!r} returned no audio for {text!r}")
        if not np.all(np.isfinite(audio)):
            raise TTSError(f"{self.name}: voice {voice!r} returned NaN/Inf samples for {text!r}")
        if not self.native_speed and speed != 1.0:
            import librosa

            audio = librosa.effects.time_stretch(audio, rate=float(speed)).astype(np.float32)
        if not self.native_pitch and pitch != 0.0:
            import librosa

            audio = librosa.effects.pitch_shift(audio, sr=int(sr), n_steps=float(pitch)).astype(np.float32)
        return audio, int(sr)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


# ---- registry ---------------------------------------------------------------------------------------------

_REGISTRY: dict[str, str] = {
    "piper": "asr_analogy.speech.tts.piper_backend:PiperBackend",
    "hibari": "asr_analogy.speech.tts.hibari_backend:HibariBackend",
    "espeak": "asr_analogy.speech.tts.espeak_backend:EspeakBackend",
    "coqui": "asr_analogy.speech.tts.coqui_backend:CoquiBackend",
    "transformers": "asr_analogy.speech.tts.transformers_backend:TransformersBackend",
}


def register_backend(name: str, backend: type[TTSBackend] | str) -> None:
    """Register a backend class (or its ``"module:Class"`` path) under ``name``.

    The class must be importable by its module path: worker processes import it by that path.
    """
    if isinstance(backend, type):
        if not issubclass(backend, TTSBackend):
            raise ConfigError(f"backend {name!r}: {backend!r} is not a TTSBackend subclass")
        backend = f"{backend.__module__}:{backend.__qualname__}"
    if ":" not in backend:
        raise ConfigError(f"backend {name!r}: expected 'module:Class', got {backend!r}")
    _REGISTRY[name] = backend


def backend_names() -> list[str]:
    """Names accepted by ``get_backend``."""
    return sorted(_REGISTRY)


def backend_class(name: str) -> type[TTSBackend]:
    """The class registered under ``name``; ``ConfigError`` listing the names for an unknown one."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown TTS backend {name!r}; available: {', '.join(backend_names())}")
    module, _, qualname = _REGISTRY[name].partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def get_backend(name: str, **options) -> TTSBackend:
    """Build the backend registered under ``name`` with its options (cheap; models load lazily)."""
    return backend_class(name)(**options)


def list_voices(backend: str = "piper", **options) -> list[str]:
    """Voices of ``backend`` usable now (installed; nothing is downloaded)."""
    return get_backend(backend, **options).list_voices()


# ---- helpers for backends ---------------------------------------------------------------------------------


def _voice_message(backend: str, voice: str, available: list[str], hint: str = "") -> str:
    shown = ", ".join(available[:40]) + (f", ... ({len(available)} in all)" if len(available) > 40 else "")
    msg = f"{backend}: voice {voice!r} is not installed; available: {shown or '(none)'}"
    return msg + (f". {hint}" if hint else "")


def package_version(dist: str) -> str:
    """Installed version of a distribution, or "absent"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoised per path, size and mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]

