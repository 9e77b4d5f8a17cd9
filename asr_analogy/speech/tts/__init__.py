"""Text-to-speech backends behind one interface (``base``), and ``synthesize``: sentences in, a synthetic-speech
corpus out (``pipeline``, worker processes in ``workers``), with text rules (``normalize``) and telephone/noise/
reverb simulation (``channel``).

    from asr_analogy.speech.tts import synthesize, get_backend, list_voices
    synthesize("prompts.txt", "data/tts_piper", backend="piper", samples_per_sentence=5, channel="telephone")

Backends (``backend_names()``): ``piper`` (bundled voice ``joe``), ``hibari`` (bundled voice ``heart``),
``espeak`` (espeak-ng program), ``coqui`` (optional extra), ``transformers`` (SpeechT5, Bark, MMS/VITS
weights the user has).
"""

from asr_analogy.speech.tts.base import (
    BackendUnavailableError,
    TextError,
    TTSBackend,
    TTSError,
    VoiceNotFoundError,
    backend_names,
    get_backend,
    list_voices,
    register_backend,
)
from asr_analogy.speech.tts.channel import apply_channel, parse_channel
from asr_analogy.speech.tts.normalize import normalize_for_tts
from asr_analogy.speech.tts.pipeline import default_cache_dir, read_sentences, synthesize

__all__ = [
    "BackendUnavailableError",
    "TTSBackend",
    "TTSError",
    "TextError",
    "VoiceNotFoundError",
    "apply_channel",
    "backend_names",
    "default_cache_dir",
    "get_backend",
    "list_voices",
    "normalize_for_tts",
    "parse_channel",
    "read_sentences",
    "register_backend",
    "synthesize",
]
