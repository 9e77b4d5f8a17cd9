"""The non-weight half of a CTranslate2 Whisper import: vocabulary, tokenizer, feature extractor, configs.

CTranslate2's ``tokenizer.json`` lacks the timestamp tokens that ``vocabulary.txt`` lists; they are added so
every token id equals its line in ``vocabulary.txt``. CTranslate2's optional ``config.json`` supplies the
suppress lists, the alignment heads and (multilingual models) the language ids, which must agree with the
language tokens of the vocabulary (``lang_to_id``/``task_to_id`` are read from the vocabulary).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.speech.models.ct2_weights import WhisperDims
from asr_analogy.speech.models.whisper_tokens import (
    MULTILINGUAL_VOCAB_SIZE,
    TASKS,
    WhisperTokens,
    generation_config,
    language_ids,
    task_ids,
    token_config,
)


def _read_vocabulary(src: Path) -> list[str]:
    path = src / "vocabulary.txt"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines
    path = src / "vocabulary.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    raise CheckpointError(f"{src}: no vocabulary.txt or vocabulary.json beside model.bin")


def _build_tokenizer(src: Path, vocabulary: list[str]):
    """WhisperTokenizerFast from ``tokenizer.json``; ids checked against the model's vocabulary, timestamps added.

    ``tokenizer.json`` of CTranslate2 Whisper exports holds the BPE vocabulary and the special tokens up to
    ``<|notimestamps|>``; the timestamp tokens ``<|0.00|>`` … ``<|30.00|>`` exist only in ``vocabulary.txt``
    and are added here as non-special tokens, in order, so every id equals its line in ``vocabulary.txt``.
    """
    from transformers import AddedToken, WhisperTokenizerFast

    tok_path = src / "tokenizer.json"
    if not tok_path.is_file():
        raise CheckpointError(f"{src}: tokenizer.json is missing")
    try:
        spec = json.loads(tok_path.read_text(encoding="utf-8"))
        special = [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{tok_path}: not a valid tokenizers JSON file ({exc})") from None
    eot = "<|endoftext|>"
    extra = [t for t in special if t != eot]
    tok = WhisperTokenizerFast(
        tokenizer_file=str(tok_path),
        unk_token=eot,
        bos_token=eot,
        eos_token=eot,
        pad_token=eot,
        additional_special_tokens=extra,
    )
    n = len(tok)
    if n > len(vocabulary):
        raise CheckpointError(f"{tok_path}: {n} tokens, but the model's vocabulary has only {len(vocabulary)}")
    ids = tok.convert_tokens_to_ids(vocabulary[:n])
    bad = [(i, vocabulary[i], j) for i, j in enumerate(ids) if i != j]
    if bad:
        i, token, j = bad[0]
        raise CheckpointError(
            f"{tok_path}: token {token!r} has id {j} in the tokenizer but {i} in the model's vocabulary "
            f"({len(bad)} mismatches)"
        )
    rest = vocabulary[n:]
    if rest:
        tok.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False) for t in rest])
        got = tok.convert_tokens_to_ids(rest)
        if got != list(range(n, n + len(rest))):
            raise CheckpointError(f"{tok_path}: could not add the {len(rest)} tokens missing from the tokenizer")
    return tok


def _ct2_config(src: Path) -> dict:
    path = src / "config.json"
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return cfg


def _configs(dims: WhisperDims, vocabulary: list[str], ct2_cfg: dict, cfg_path: Path):
    """(WhisperConfig, GenerationConfig) from the dims, the vocabulary and CTranslate2's config.json."""
    from transformers import WhisperConfig

    tokens = WhisperTokens.from_vocabulary(vocabulary, f"{cfg_path.parent}: the vocabulary")
    suppress = [int(i) for i in ct2_cfg.get("suppress_ids", [])]
    begin_suppress = [int(i) for i in ct2_cfg.get("suppress_ids_begin", [tokens.space, tokens.endoftext])]
    heads = ct2_cfg.get("alignment_heads")
    if heads is not None:
        try:
            heads = [[int(layer), int(head)] for layer, head in heads]
        except (TypeError, ValueError):
            raise ConfigError(f"{cfg_path}: 'alignment_heads' must be a list of [layer, head] pairs") from None
        for layer, head in heads:
            if not (0 <= layer < dims.decoder_layers and 0 <= head < dims.decoder_attention_heads):
                raise ConfigError(f"{cfg_path}: alignment head [{layer}, {head}] is outside the decoder")
    else:  # CTranslate2's default: every head of the second half of the decoder
        heads = [[layer, head] for layer in range(dims.decoder_layers // 2, dims.decoder_layers)
                 for head in range(dims.decoder_attention_heads)]
    multilingual = dims.vocab_size >= MULTILINGUAL_VOCAB_SIZE
    config = WhisperConfig(
        **dims.architecture(),
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=dims.tied,
        **token_config(tokens),
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        architectures=["WhisperForConditionalGeneration"],
    )
    index = {t: i for i, t in enumerate(vocabulary)}
    extra: dict = {"alignment_heads": heads, "max_initial_timestamp_index": 50}
    if "<|startofprev|>" in index:
        extra["prev_sot_token_id"] = index["<|startofprev|>"]
    if multilingual:
        extra["lang_to_id"], extra["task_to_id"] = _language_and_task_ids(vocabulary, ct2_cfg, cfg_path)
    gen = generation_config(tokens, max_length=dims.max_target_positions, suppress_tokens=suppress,
                            begin_suppress_tokens=begin_suppress, multilingual=multilingual, **extra)
    return config, gen


def _language_and_task_ids(vocabulary: list[str], ct2_cfg: dict, cfg_path: Path) -> tuple[dict, dict]:
    """``lang_to_id`` and ``task_to_id`` of a multilingual vocabulary (read from it, not hard-coded); when
    CTranslate2's config.json lists ``lang_ids``, they must name the same tokens."""
    langs, tasks = language_ids(vocabulary), task_ids(vocabulary)
    if not langs or set(tasks) != set(TASKS):
        raise CheckpointError(f"{cfg_path.parent}: a multilingual vocabulary needs language tokens and "
                              f"<|transcribe|>/<|translate|> (found {len(langs)} languages, tasks {sorted(tasks)})")
    if "lang_ids" in ct2_cfg:
        listed = sorted(int(i) for i in ct2_cfg["lang_ids"])
        if listed != sorted(langs.values()):
            raise CheckpointError(f"{cfg_path}: 'lang_ids' ({len(listed)} ids from {listed[:1]}) are not the "
                                  f"vocabulary's language tokens ({len(langs)} from {min(langs.values())})")
    return langs, tasks


def whisper_processor(
    src_dir: str | os.PathLike,
    num_mel_bins: int = 80,
    max_source_positions: int = 1500,
    *,
    vocabulary: list[str] | None = None,
):
    """``WhisperProcessor`` for a CTranslate2 Whisper directory: its tokenizer plus a feature extractor.

    The feature extractor computes ``num_mel_bins`` log-mel bins from 16 kHz audio (25 ms window, 10 ms hop)
    and pads/cuts to ``2 * max_source_positions`` frames (30 s for 1500 positions).
    """
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    src = Path(src_dir)
    vocabulary = vocabulary if vocabulary is not None else _read_vocabulary(src)
    tokenizer = _build_tokenizer(src, vocabulary)
    frames = 2 * max_source_positions
    feature_extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=max(1, round(frames / 100)),
        n_fft=400,
    )
    # chunk_length is whole seconds; the exact window is set here (frames of 160 samples).
    feature_extractor.n_samples = frames * 160
    feature_extractor.nb_max_frames = frames
    return WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

