"""The CTranslate2 engine of ``transcribe``: a Whisper in CTranslate2 format decoding batches of audio.

``Ct2Whisper`` loads a CTranslate2 directory written by ``export-ct2`` (``model.bin`` plus the tokenizer,
``preprocessor_config.json`` and ``generation_config.json`` it carries), or exports a transformers Whisper
directory on the fly into a temporary directory at the asked weight type. Decoding matches the transformers
engine: the same log-mel features (the transformers feature extractor, padded to the model's window), the same
forced prompt (``whisper_tokens.forced_prefix``), the same suppressed tokens (the generation config's
``suppress_tokens``; ``begin_suppress_tokens`` through CTranslate2's ``suppress_blank``, which reads them from
the ``config.json`` the converter wrote) and the same cap on generated tokens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from asr_analogy.errors import ConfigError
from asr_analogy.io.audio import TARGET_SR
from asr_analogy.speech.repetition import guard

WHISPER_TEXT_POSITIONS = 448
"""Decoder positions of every Whisper model (prompt plus generated tokens)."""

CT2_FILES = ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json", "generation_config.json")
"""What a CTranslate2 directory needs for this engine (``export-ct2`` writes them all)."""


def is_ct2_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CTranslate2 model directory (holds ``model.bin``)."""
    return (Path(path) / "model.bin").is_file()


def ct2_device(device: str | None) -> tuple[str, int]:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` (or None: CUDA when CTranslate2 sees a GPU) → (device, index)."""
    import ctranslate2

    if device is None:
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    kind, _, index = str(device).partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise ConfigError(f"device {device!r}: the ctranslate2 engine runs on cpu or cuda[:N]")
    return kind, int(index or 0)


def new_token_cap(generation_config, prompt_len: int, max_new_tokens: int | None = None) -> int:
    """How many tokens a Whisper decode may generate after a prompt of ``prompt_len`` tokens: ``max_new_tokens``,
    else the generation config's ``max_length`` (transformers' Whisper ``generate`` reads it so too), never more
    than the decoder positions left after the prompt. Both engines stop there; an output of exactly this many
    tokens ended without an end token."""
    return min(max_new_tokens or generation_config.max_length, WHISPER_TEXT_POSITIONS - prompt_len)


def max_length_for(new_tokens: int, prompt_len: int) -> int:
    """CTranslate2's Whisper ``max_length`` that lets exactly ``new_tokens`` tokens be generated after a prompt
    of ``prompt_len`` tokens: it generates at most ``min(max_length // 2, max_length - (prompt_len - 1))``."""
    return max(2 * new_tokens, new_tokens + prompt_len - 1)


class Ct2Whisper:
    """A CTranslate2 Whisper with its feature extractor, tokenizer and generation config.

    ``model_dir``: a CTranslate2 directory, or a transformers Whisper directory exported on the fly (kept in a
    temporary directory as long as this object lives) with weights of type ``compute_type`` (``float32`` when
    unset). ``compute_type``: CTranslate2's compute type (``int8``, ``float16``, ``float32``, ...); for a
    CTranslate2 directory the default keeps the type it was saved with. ``device``: ``cpu``, ``cuda[:N]``.
    ``cpu_threads``: threads of one decoding on CPU (0: CTranslate2's default).
    """

    def __init__(self, model_dir: str | os.PathLike, device: str | None = "cpu", compute_type: str | None = None,
                 cpu_threads: int = 0):
        import ctranslate2
        from transformers import AutoTokenizer, GenerationConfig, WhisperFeatureExtractor

        path = Path(model_dir)
        self._tmp = None
        if not is_ct2_dir(path):
            from asr_analogy.speech.models.ct2_export import export_ct2

            self._tmp = tempfile.TemporaryDirectory(prefix="asr-analogy-ct2-")
            path = export_ct2(path, Path(self._tmp.name) / "model", compute_type or "float32")
            compute_type = None
        missing = [name for name in CT2_FILES if not (path / name).is_file()]
        if missing:
            raise ConfigError(f"{path}: CTranslate2 directory without {', '.join(missing)}; write it with "
                              "`asr-analogy export-ct2`")
        kind, index = ct2_device(device)
        try:
            self.runtime = ctranslate2.models.Whisper(str(path), device=kind, device_index=index,
                                                      compute_type=compute_type or "default", intra_threads=cpu_threads)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"{path}: CTranslate2 cannot load the model ({exc})") from None
        self.model_dir = path
        self.feature_extractor = WhisperFeatureExtractor.from_pretrained(str(path))
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.generation_config = GenerationConfig.from_pretrained(str(path))

    @property
    def window_samples(self) -> int:
        """Samples of the encoder window (16 kHz)."""
        return int(self.feature_extractor.n_samples)

    def decode(self, audios: list[np.ndarray], prompt: list[int], num_beams: int = 1,
               max_new_tokens: int | None = None, repetition_guard: bool = False) -> list[str]:
        """Text of each clip (16 kHz float32 mono); greedy with ``num_beams`` 1, else beam search of that width.
        ``max_new_tokens``: cap on generated tokens (default: the generation config's ``max_length``, as the
        transformers engine reads it), never more than the decoder positions left after ``prompt``.
        ``repetition_guard``: ``asr_analogy.speech.repetition.guard`` on each output (one without an end token
        has exactly the capped number of tokens)."""
        import ctranslate2

        gen = self.generation_config
        feats = self.feature_extractor(audios, sampling_rate=TARGET_SR, return_tensors="np").input_features
        new_tokens = new_token_cap(gen, len(prompt), max_new_tokens)
        results = self.runtime.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(feats, dtype=np.float32)),
            [list(prompt)] * len(audios),
            beam_size=num_beams,
            max_length=max_length_for(new_tokens, len(prompt)),
            suppress_tokens=list(gen.suppress_tokens or []),
            suppress_blank=bool(gen.begin_suppress_tokens),
        )
        seqs = [r.sequences_ids[0] for r in results]
        if repetition_guard:
            seqs = [guard(s, reached_cap=len(s) >= new_tokens) for s in seqs]
        return [self.tokenizer.decode(s, skip_special_tokens=True).strip() for s in seqs]
