"""The fine-tuning config: ``FinetuneConfig`` (every key with a comment), loading and validating it, and
resolving the model it names (``bundled:tiny.en``, ``bundled:base``, the model family from ``config.json``).

``load_finetune_config(path, overrides)`` reads the YAML strictly (``io.yaml_file``); errors name the key and
the file. ``speech.train.finetune`` runs a config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asr_analogy.errors import CheckpointError, ConfigError
from asr_analogy.io.yaml_file import load_yaml

MODEL_TYPES = {"whisper": "whisper", "wav2vec2-conformer": "wav2vec2_conformer"}
"""transformers ``config.model_type`` → family name used here."""


class FinetuneConfig(BaseModel):
    """A fine-tuning run. Relative paths are relative to the working directory."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    # -- what to train on what --
    model: str  # base model: a save_pretrained directory, a hub id, "bundled:tiny.en" or "bundled:base" (pip)
    model_type: Literal["auto", "whisper", "wav2vec2_conformer"] = "auto"  # "auto": read config.json's model_type
    train_manifest: Path  # JSONL manifest of training utterances (audio_filepath, text, ...)
    dev_manifest: Path | None = None  # JSONL manifest scored by WER during training; the best checkpoint is kept
    output_dir: Path  # final save_pretrained directory (written atomically at the end)
    checkpoints_dir: Path | None = None  # Trainer checkpoints; default "<output_dir>.checkpoints"
    keep_checkpoints: bool = False  # keep checkpoints_dir after a successful run (needed to extend it later)

    # -- optimisation --
    learning_rate: float = Field(1e-5, gt=0)  # peak learning rate (AdamW)
    max_steps: int | None = Field(None, gt=0)  # optimizer steps; takes precedence over num_epochs
    num_epochs: float = Field(1.0, gt=0)  # passes over the training set when max_steps is not set
    batch_size: int = Field(8, gt=0)  # utterances per device per forward pass
    grad_accum: int = Field(1, gt=0)  # forward passes per optimizer step (effective batch = batch × accum × devices)
    warmup_steps: int = Field(0, ge=0)  # linear warm-up steps
    lr_scheduler: str = "linear"  # transformers scheduler name: linear, cosine, constant, constant_with_warmup, ...
    weight_decay: float = Field(0.0, ge=0)  # AdamW weight decay
    max_grad_norm: float = Field(1.0, gt=0)  # gradient clipping norm
    seed: int = 0  # seeds data order, dropout and newly initialised heads
    fp16: bool = False  # float16 mixed precision (CUDA only)
    bf16: bool = False  # bfloat16 mixed precision (CUDA only)
    gradient_checkpointing: bool = False  # recompute activations to save memory

    # -- what to train --
    freeze_encoder: bool = False  # Whisper: freeze the whole encoder; Wav2Vec2: freeze everything but the CTC head
    freeze_feature_encoder: bool | None = None  # freeze the convolutional front end; None: True for Wav2Vec2, False for Whisper
    audio_context_s: int | None = Field(None, ge=1, le=30)  # Whisper: shorten the encoder window to this many seconds

    # -- data --
    max_duration_s: float | None = Field(None, gt=0)  # skip longer clips; None: the model's window (Whisper) or 30 s
    min_duration_s: float = Field(0.1, ge=0)  # skip shorter clips, seconds
    silence_dbfs: float = -60.0  # skip clips quieter than this RMS level, dBFS

    # -- model-specific --
    language: str | None = None  # multilingual Whisper: transcript language (default "en"; labels start with it); .en: unset
    task: Literal["transcribe", "translate"] = "transcribe"  # multilingual Whisper task token
    vocab: str | None = None  # Wav2Vec2: vocab.json path, "manifest" (build from transcripts), None: the model's own if any, else "manifest"
    generation_max_length: int = Field(128, gt=0)  # Whisper: max tokens when decoding the dev set
    generation_num_beams: int = Field(1, gt=0)  # Whisper: beams when decoding the dev set
    wer_normalizer: str = "whisper_english"  # text normalizer of the dev WER (see asr_analogy.speech.metrics)

    # -- schedule of logs, evaluation, checkpoints --
    logging_steps: int = Field(10, gt=0)  # log loss and learning rate every N steps
    eval_steps: int | None = Field(None, gt=0)  # score dev WER every N steps; default: save_steps
    save_steps: int = Field(500, gt=0)  # write a checkpoint every N steps (and at the end)
    save_total_limit: int | None = Field(2, gt=0)  # keep at most N checkpoints (the best is always kept)
    eval_batch_size: int | None = Field(None, gt=0)  # dev batch size; default: batch_size
    dataloader_num_workers: int | None = Field(None, ge=0)  # processes decoding audio; None: CPU cores - 1, at most 4

    # -- run control --
    resume: bool = False  # continue from the last checkpoint in checkpoints_dir, if any
    force: bool = False  # replace an existing output_dir and discard old checkpoints

    @field_validator("wer_normalizer")
    @classmethod
    def _known_normalizer(cls, value: str) -> str:
        from asr_analogy.speech.metrics import NORMALIZERS

        if value not in NORMALIZERS:
            raise ValueError(f"unknown normalizer {value!r}; choose one of {', '.join(NORMALIZERS)}")
        return value

    @field_validator("lr_scheduler")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        from transformers import SchedulerType

        known = [s.value for s in SchedulerType]
        if value not in known:
            raise ValueError(f"unknown scheduler {value!r}; choose one of {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.dev_manifest is not None and self.eval_steps is not None and self.save_steps % self.eval_steps:
            raise ValueError(
                f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}) "
                "so that the best dev checkpoint is saved"
            )
        return self

    @property
    def checkpoints_path(self) -> Path:
        return self.checkpoints_dir or self.output_dir.with_name(self.output_dir.name + ".checkpoints")


def _validation_message(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(x) for x in err["loc"]) or "<top level>"
        if err["type"] == "extra_forbidden":
            known = ", ".join(FinetuneConfig.model_fields)
            parts.append(f"unknown key '{key}' in {source} (known keys: {known})")
        elif err["type"] == "missing":
            parts.append(f"missing required key '{key}' in {source}")
        else:
            parts.append(f"key '{key}' in {source}: {err['msg']}")
    return "; ".join(parts)


def make_finetune_config(values: dict, source: str = "<config>") -> FinetuneConfig:
    """Validate a dict into a ``FinetuneConfig``; errors name the key and ``source`` (``ConfigError``)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    try:
        return FinetuneConfig(**values)
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, source)) from None


def load_finetune_config(path: str | os.PathLike, overrides: dict | None = None) -> FinetuneConfig:
    """Read and validate a fine-tuning YAML; ``overrides`` (key → value) replace keys of the file.

    Raises ``ConfigError`` naming the file and key for unknown keys, wrong types, missing required keys, and
    (``io.yaml_file.load_yaml``) for a missing file, invalid YAML or a key given twice.
    """
    path = Path(path)
    values = dict(load_yaml(path, "fine-tuning config"))
    for key, value in (overrides or {}).items():
        if key not in FinetuneConfig.model_fields:
            raise ConfigError(f"unknown key '{key}' given on the command line (known keys: {', '.join(FinetuneConfig.model_fields)})")
        values[key] = value
    return make_finetune_config(values, str(path))


def resolve_model(name: str) -> str:
    """``bundled:NAME`` → the imported bundled Whisper directory; anything else is returned unchanged."""
    if name.startswith("bundled:"):
        try:
            from asr_analogy.speech.models.ct2_import import bundled_model_dir
        except ImportError as exc:
            raise CheckpointError(f"cannot resolve {name}: the CTranslate2 importer is unavailable ({exc})") from None
        return str(bundled_model_dir(name.split(":", 1)[1]))
    return name


def detect_model_type(name: str) -> str:
    """Family of a model (``whisper`` or ``wav2vec2_conformer``) from its ``config.json``."""
    from transformers import AutoConfig

    try:
        model_type = AutoConfig.from_pretrained(name).model_type
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the model config of {name}: {exc}") from None
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"model {name} has model_type '{model_type}'; fine-tuning supports {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[model_type]

