"""eSpeak NG (formant synthesis) through the ``espeak-ng`` binary from Debian (``apt-get install espeak-ng``).

Voices are ``LANGUAGE`` or ``LANGUAGE+VARIANT``: ``en-us``, ``en-gb-scotland``, ``en+m3``, ``en-us+f2``.
``list_voices()`` gives the languages (MBROLA voices left out: they need separate data) followed by
``en-us+VARIANT`` for each installed variant. Output is 22.05 kHz. Deterministic: ``seed`` has no effect.

Speed and pitch are native: speed scales the rate of 175 words per minute (clamped to espeak's 80-450);
pitch sets espeak's ``-p`` (0-99, default 50), which multiplies the voice's base pitch by 2^((p-50)/50),
so one semitone is 50/12 ≈ 4.17 units and the reachable shift is about ±12 semitones.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from asr_analogy.speech.tts.base import (
    BackendUnavailableError,
    TTSBackend,
    TTSError,
    VoiceNotFoundError,
    _voice_message,
)

DEFAULT_WPM = 175
"""espeak-ng's normal rate, words per minute (espeakRATE_NORMAL)."""
MIN_WPM, MAX_WPM = 80, 450
PITCH_UNITS_PER_SEMITONE = 50.0 / 12.0


def espeak_pitch(semitones: float) -> int:
    """espeak ``-p`` value for a shift in semitones: 50 + 50/12 per semitone, clamped to 0..99."""
    return int(min(99, max(0, round(50 + semitones * PITCH_UNITS_PER_SEMITONE))))


def espeak_rate(speed: float) -> int:
    """espeak ``-s`` words per minute for a speed factor: 175 × speed, clamped to 80..450."""
    return int(min(MAX_WPM, max(MIN_WPM, round(DEFAULT_WPM * speed))))


@functools.lru_cache(maxsize=4)
def _voice_table(binary: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(languages, variants) reported by ``espeak-ng --voices`` and ``--voices=variant``."""

    def rows(arg: str) -> list[list[str]]:
        out = subprocess.run([binary, arg], capture_output=True, text=True, check=True).stdout
        return [line.split() for line in out.splitlines()[1:] if line.strip()]

    languages, variants = [], []
    for cols in rows("--voices"):
        # Pty Language Age/Gender VoiceName File [Other languages as "(en 2)(en-gb 3)"]; MBROLA voices: mb/
        if len(cols) < 5 or cols[4].startswith("mb/"):
            continue
        for lang in [cols[1], *re.findall(r"\(([^\s()]+) \d+\)", " ".join(cols[5:]))]:
            if lang not in languages:
                languages.append(lang)
    for cols in rows("--voices=variant"):
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            variants.append(cols[4][3:])
    return tuple(languages), tuple(variants)


class EspeakBackend(TTSBackend):
    """eSpeak NG via its command-line program. Options: ``binary`` (default: ``espeak-ng`` on PATH)."""

    name = "espeak"
    default_voice = "en-us"
    native_speed = True
    native_pitch = True

    def __init__(self, binary: str | None = None, **options) -> None:
        super().__init__(**({"binary": binary} if binary else {}), **options)
        found = shutil.which(binary or "espeak-ng")
        if found is None:
            raise BackendUnavailableError(
                f"espeak: the espeak-ng program was not found ({binary or 'espeak-ng'} on PATH); install it with "
                "`apt-get install espeak-ng` (or `make system-deps`)"
            )
        self.binary = found

    def list_voices(self) -> list[str]:
        languages, variants = _voice_table(self.binary)
        return sorted(languages) + [f"en-us+{v}" for v in variants]

    def check_voice(self, voice: str | None) -> str:
        voice = self.default_voice if voice is None else str(voice)
        languages, variants = _voice_table(self.binary)
        lang, _, variant = voice.partition("+")
        if lang not in languages:
            raise VoiceNotFoundError(_voice_message(self.name, voice, sorted(languages)))
        if variant and variant not in variants:
            raise VoiceNotFoundError(
                f"espeak: voice {voice!r}: variant {variant!r} is not installed; variants: {', '.join(variants)}"
            )
        return voice

    def cache_options(self) -> dict:
        return {}

    @functools.cached_property
    def _version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.strip()
        return out.split("Data at")[0].strip() or "espeak-ng"

    def version(self) -> str:
        return self._version

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
            wav = Path(tmp) / "out.wav"
            cmd = [self.binary, "-v", voice, "-s", str(espeak_rate(speed)), "-p", str(espeak_pitch(pitch))]
            cmd += ["-w", str(wav), "--stdin"]
            proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=120)
            if proc.returncode != 0 or not wav.is_file():
                msg = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
                raise TTSError(f"espeak: espeak-ng failed for voice {voice!r}: {msg}")
            audio, sr = sf.read(str(wav), dtype="float32")
        return np.asarray(audio, dtype=np.float32), int(sr)
