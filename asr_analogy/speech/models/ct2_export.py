"""Export a transformers Whisper directory to CTranslate2 (``model.bin``), the format faster-whisper,
WhisperX and ``ctranslate2.models.Whisper`` load.

The conversion is CTranslate2's own (``ctranslate2.converters.TransformersConverter``); this module only checks
the input, writes the output atomically and makes it self-contained: the tokenizer, the processor and the
generation config travel with ``model.bin`` (``copy_files``), and ``preprocessor_config.json`` (the feature
extractor alone, the file faster-whisper reads for the number of mel bins) is written beside them with the
encoder window of the model (``2 * max_source_positions`` mel frames of 10 ms).
"""

from __future__ import annotations

import os
from pathlib import Path

from asr_analogy.errors import ConfigError
from asr_analogy.io.atomic import atomic_dir

QUANTIZATIONS = ("float32", "float16", "int8")
"""Weight types of an export: ``float16`` halves the file, ``int8`` quarters it (8-bit weights, one float
scale per row) and is what CPU deployments usually run."""

CARRIED_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "normalizer.json",
                 "added_tokens.json", "special_tokens_map.json", "processor_config.json", "generation_config.json")
"""Files of the transformers directory copied into the export when present (``TransformersConverter``'s
``copy_files``): what decoding needs besides the weights."""


def _check_whisper_dir(model_dir: Path) -> None:
    """``ConfigError`` unless ``model_dir`` is a local transformers Whisper directory with its tokenizer."""
    import json

    config = model_dir / "config.json"
    if not model_dir.is_dir():
        raise ConfigError(f"model directory {model_dir} does not exist")
    if (model_dir / "model.bin").is_file() and not (model_dir / "model.safetensors").exists():
        raise ConfigError(f"{model_dir} is already a CTranslate2 model (model.bin); export a transformers directory")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{model_dir}: not a transformers model directory (config.json: {exc})") from None
    if model_type != "whisper":
        raise ConfigError(f"{model_dir}: export-ct2 takes a Whisper model, not model_type {model_type!r}")
    if not (model_dir / "tokenizer.json").is_file():
        raise ConfigError(f"{model_dir} has no tokenizer.json; save the processor with the model first")


def export_ct2(model_dir: str | os.PathLike, out_dir: str | os.PathLike, quantization: str = "float32", *,
               force: bool = False) -> Path:
    """Convert the Whisper ``save_pretrained`` directory ``model_dir`` to a CTranslate2 directory ``out_dir``
    with weights of type ``quantization`` (one of ``QUANTIZATIONS``). Returns ``out_dir``.

    ``out_dir`` is written atomically (a temporary sibling renamed into place); an existing one is refused
    (``OutputExistsError``) unless ``force``. Bad input raises ``ConfigError`` naming the directory before
    anything is written.
    """
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    model_dir = Path(model_dir)
    _check_whisper_dir(model_dir)
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoProcessor, WhisperConfig

    from asr_analogy.speech.transcribe import whisper_feature_extractor

    carried = [name for name in CARRIED_FILES if (model_dir / name).is_file()]
    try:
        processor = AutoProcessor.from_pretrained(str(model_dir))
        positions = WhisperConfig.from_pretrained(str(model_dir)).max_source_positions
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{model_dir}: cannot load the processor ({exc})") from None
    with atomic_dir(out_dir, force=force) as tmp:
        TransformersConverter(str(model_dir), copy_files=carried).convert(str(tmp), quantization=quantization,
                                                                          force=True)
        whisper_feature_extractor(processor, positions).save_pretrained(str(tmp))  # preprocessor_config.json
    return Path(out_dir)
