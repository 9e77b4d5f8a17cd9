"""Fine-tune Whisper (sequence-to-sequence) or Wav2Vec2-Conformer (CTC) on JSONL manifests.

One YAML config (see ``FinetuneConfig`` in ``speech.finetune_config``; every key has a comment there) drives a
run::

    asr-analogy finetune recipes/ivr_syn2real/finetune_A.yaml
    asr-analogy finetune CONFIG.yaml --resume              # continue from the last checkpoint
    asr-analogy finetune CONFIG.yaml --max-steps 50 --set learning_rate=3e-5

or from Python: ``finetune(load_finetune_config("cfg.yaml"))`` or ``finetune(FinetuneConfig(...))``.

Whisper is trained with ``Seq2SeqTrainer`` (collator: ``models.whisper.WhisperCollator``: the decoder is fed the
prompt that ``generate`` forces, the loss covers the text and the end token); Wav2Vec2-Conformer with
``Trainer`` and CTC over a character vocabulary (``models.wav2vec2_conformer``). The family is read from the
model's ``config.json`` (``model_type``).

Outputs. Checkpoints go to ``checkpoints_dir`` (default ``<output_dir>.checkpoints``); at the end the final
model (the best dev-WER checkpoint when ``dev_manifest`` is set, else the last) is written to a temporary
sibling and renamed to ``output_dir``: a ``save_pretrained`` directory with model, processor, generation config
(Whisper), plus ``finetune_config.yaml``, ``trainer_state.json`` (losses, steps, dev WER),
``finetune_data.json`` (skip reports of the manifests) and ``README.md`` (a Hugging Face model card: base model,
steps, data, best dev WER). An interrupted run leaves no ``output_dir``; run it
again with ``--resume`` to continue from the last checkpoint (the step count continues).

Several GPUs. The same command runs unchanged under a distributed launcher (data-parallel DDP);
``batch_size`` is per device, so the effective batch is ``batch_size × grad_accum × processes``::

    torchrun --nproc_per_node 4 -m asr_analogy finetune CONFIG.yaml
    accelerate launch --multi_gpu --num_processes 4 -m asr_analogy finetune CONFIG.yaml

Data. Every process indexes the manifests (metadata only); audio is decoded per item in data-loader worker
processes (``dataloader_num_workers``), so memory does not grow with the corpus, and training batches hold
clips of similar duration (``speech.data.LengthGroupedSampler``, seeded by ``seed``). Only the main process
writes checkpoints, the final directory and reports.

Without CUDA, ``torchrun`` runs the processes on CPU (gloo backend). ``fp16``/``bf16`` apply only on CUDA
devices (ignored with a warning on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import yaml

from asr_analogy.errors import CheckpointError, ConfigError, ManifestError, OutputExistsError
from asr_analogy.io.model_card import model_card, write_model_card
from asr_analogy.speech.finetune_config import (
    FinetuneConfig,
    detect_model_type,
    load_finetune_config,
    make_finetune_config,
    resolve_model,
)

__all__ = ["FinetuneConfig", "finetune", "load_finetune_config", "make_finetune_config", "word_error_rate"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# WER on the dev set


def word_error_rate(references: list[str], hypotheses: list[str], normalizer: str = "whisper_english") -> float:
    """Corpus WER as a fraction (``asr_analogy.speech.metrics.evaluate``, the same normalizer on both sides).

    0.0 when the normalized references hold no words at all.
    """
    from asr_analogy.speech.metrics import evaluate

    records = [{"text": r, "hypothesis": h} for r, h in zip(references, hypotheses)]
    wer = evaluate(records, normalizer=normalizer, by=None, bootstrap=0)["wer"]
    return 0.0 if wer is None else float(wer)


# ---------------------------------------------------------------------------------------------------------
# Families: model + processor + collator + metrics


class _Setup:
    """What a family contributes to a run."""

    def __init__(self, model, processor, collator, compute_metrics, preprocess_logits=None, seq2seq=False):
        self.model = model
        self.processor = processor
        self.collator = collator
        self.compute_metrics = compute_metrics
        self.preprocess_logits = preprocess_logits
        self.seq2seq = seq2seq


def _setup_whisper(cfg: FinetuneConfig, model_name: str) -> _Setup:
    import numpy as np

    from asr_analogy.speech.models import whisper as W

    model, processor = W.load_whisper(model_name)
    tokenizer = processor.tokenizer
    gen = model.generation_config
    multilingual = bool(getattr(gen, "is_multilingual", model.config.vocab_size >= 51865))
    if multilingual:
        language = cfg.language or "en"
        tokenizer.set_prefix_tokens(language=language, task=cfg.task, predict_timestamps=False)
        gen.language, gen.task = language, cfg.task
    elif cfg.language not in (None, "en", "english"):
        raise ConfigError(f"model {cfg.model} is English-only; language '{cfg.language}' cannot be set")
    else:
        tokenizer.set_prefix_tokens(predict_timestamps=False)
    if cfg.audio_context_s is not None:
        W.set_audio_context(model, processor, cfg.audio_context_s)
    if cfg.freeze_encoder:
        W.freeze_encoder(model)
    if cfg.freeze_feature_encoder:
        W.freeze_feature_encoder(model)
    model.config.use_cache = False  # no key/value cache while training
    collator = W.WhisperCollator(processor, W.decoder_prefix(tokenizer), model.config.max_target_positions)

    def compute_metrics(pred):
        ids = np.where(pred.predictions < 0, tokenizer.pad_token_id, pred.predictions)
        labels = np.where(pred.label_ids < 0, tokenizer.pad_token_id, pred.label_ids)
        hyps = tokenizer.batch_decode(ids, skip_special_tokens=True)
        refs = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return {"wer": word_error_rate(refs, hyps, cfg.wer_normalizer)}

    return _Setup(model, processor, collator, compute_metrics, seq2seq=True)


def _setup_wav2vec2(cfg: FinetuneConfig, model_name: str, texts: list[str]) -> _Setup:
    import numpy as np
    import torch

    from asr_analogy.speech.models import wav2vec2_conformer as C

    if cfg.vocab is None:
        has_own = (Path(model_name) / "vocab.json").is_file() or not Path(model_name).exists()
        vocab = None if has_own else C.build_char_vocab(texts)
    elif cfg.vocab == "manifest":
        vocab = C.build_char_vocab(texts)
    else:
        vocab = C.read_vocab(cfg.vocab)
    model, processor = C.load_wav2vec2_conformer(model_name, vocab)
    if cfg.freeze_feature_encoder is not False:
        model.freeze_feature_encoder()
    if cfg.freeze_encoder:
        model.freeze_base_model()
    tokenizer = processor.tokenizer
    collator = C.CTCCollator(processor)

    def preprocess_logits(logits, labels):
        return torch.argmax(logits, dim=-1)

    def compute_metrics(pred):
        ids = np.where(pred.predictions < 0, tokenizer.pad_token_id, pred.predictions)
        labels = np.where(pred.label_ids < 0, tokenizer.pad_token_id, pred.label_ids)
        hyps = tokenizer.batch_decode(ids)
        refs = tokenizer.batch_decode(labels, group_tokens=False)
        return {"wer": word_error_rate(refs, hyps, cfg.wer_normalizer)}

    return _Setup(model, processor, collator, compute_metrics, preprocess_logits)


# ---------------------------------------------------------------------------------------------------------
# The run


def _is_complete(output_dir: Path, cfg: FinetuneConfig) -> tuple[bool, int | None]:
    """Whether ``output_dir`` already holds a run that reached ``cfg``'s steps (or epochs); and its step count."""
    try:
        state = json.loads((output_dir / "trainer_state.json").read_text())
        steps, epoch = int(state["global_step"]), float(state.get("epoch") or 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return False, None
    done = steps >= cfg.max_steps if cfg.max_steps is not None else epoch >= cfg.num_epochs - 1e-6
    return done, steps


def _publish(tmp: Path, path: Path) -> None:
    """Rename a complete directory ``tmp`` to ``path``, replacing an old ``path`` only at the last moment."""
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def finetune(config: FinetuneConfig | dict | str | os.PathLike, *, echo: Callable[[str], None] | None = None) -> Path:
    """Fine-tune the configured model; returns the final ``save_pretrained`` directory (``output_dir``).

    ``config`` is a ``FinetuneConfig``, a dict of its keys, or a YAML path. Checks that need no model run
    first (existing output, stale checkpoints, manifests with no usable audio) and fail with an
    ``AsrAnalogyError`` before anything is written. ``echo`` receives progress lines (data kept/skipped,
    resuming, done); they go to the module logger as well. Only the main process echoes.
    """
    from asr_analogy.speech.data import load_manifest_dataset

    main_process = int(os.environ.get("RANK", "0")) == 0

    def say(message: str) -> None:
        log.info(message)
        if echo is not None and main_process:
            echo(message)

    if isinstance(config, (str, os.PathLike)):
        cfg = load_finetune_config(config)
    elif isinstance(config, dict):
        cfg = make_finetune_config(config)
    else:
        cfg = config
    out_dir = Path(cfg.output_dir)
    ckpt_dir = Path(cfg.checkpoints_path)

    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if out_dir.exists() and not (cfg.resume or cfg.force):
        raise OutputExistsError(f"{out_dir} already exists; pass --force to replace it or --resume to continue")
    if out_dir.exists() and cfg.resume and not cfg.force:
        complete, steps = _is_complete(out_dir, cfg)
        if complete:
            say(f"{out_dir} is complete ({steps} steps); nothing to do")
            return out_dir
        if last is None:
            raise CheckpointError(
                f"{out_dir} holds {steps} steps, fewer than asked, but {ckpt_dir} has no checkpoint to continue "
                "from (set keep_checkpoints: true to extend finished runs)"
            )
    if last is not None and not cfg.resume and not cfg.force:
        raise OutputExistsError(
            f"{ckpt_dir} holds checkpoints of an earlier run ({Path(last).name}); pass --resume to continue "
            "from it or --force to start over"
        )

    model_name = resolve_model(cfg.model)
    family = detect_model_type(model_name) if cfg.model_type == "auto" else cfg.model_type

    if family == "whisper":
        from transformers import AutoConfig

        window = AutoConfig.from_pretrained(model_name).max_source_positions / 50
        if cfg.audio_context_s is not None:
            if cfg.audio_context_s > window:
                raise ConfigError(f"audio_context_s {cfg.audio_context_s} exceeds the window of {cfg.model} ({window:g} s)")
            window = cfg.audio_context_s
        max_s = min(cfg.max_duration_s or window, window)  # Whisper cuts audio beyond its window
    else:
        if cfg.audio_context_s is not None:
            raise ConfigError("audio_context_s applies to Whisper only; remove it for a Wav2Vec2-Conformer model")
        max_s = cfg.max_duration_s or 30.0
    data_kw = dict(max_duration_s=max_s, min_duration_s=cfg.min_duration_s, silence_dbfs=cfg.silence_dbfs)
    train_ds, train_report = load_manifest_dataset(cfg.train_manifest, skip_log=_skip_log(ckpt_dir, "train"), **data_kw)
    say(f"train: {train_report.summary()}")
    dev_ds = None
    if cfg.dev_manifest is not None:
        dev_ds, dev_report = load_manifest_dataset(cfg.dev_manifest, skip_log=_skip_log(ckpt_dir, "dev"), **data_kw)
        say(f"dev: {dev_report.summary()}")

    import transformers

    transformers.set_seed(cfg.seed)
    if family == "whisper":
        setup = _setup_whisper(cfg, model_name)
    else:
        texts = train_ds.texts + (dev_ds.texts if dev_ds is not None else [])
        setup = _setup_wav2vec2(cfg, model_name, texts)

    ckpt_existed = ckpt_dir.exists()
    trainer = _make_trainer(cfg, setup, train_ds, dev_ds, ckpt_dir)  # also sets up the processes
    if trainer.is_world_process_zero():
        if cfg.force and not cfg.resume and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
        elif not cfg.resume:
            shutil.rmtree(_skip_log(ckpt_dir, "train").parent, ignore_errors=True)  # skips of an earlier run
    trainer.accelerator.wait_for_everyone()
    resume_from = get_last_checkpoint(str(ckpt_dir)) if cfg.resume and ckpt_dir.is_dir() else None
    if resume_from:
        say(f"resuming from {resume_from}")
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except ManifestError:  # every clip turned out unusable when read: leave nothing behind
        if trainer.is_world_process_zero() and not ckpt_existed and get_last_checkpoint(str(ckpt_dir)) is None:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        raise

    # Final directory: every rank takes part in save_model (sharded/ZeRO-3 models gather), rank 0 publishes.
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-final")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        try:
            setup.processor.save_pretrained(str(tmp))
            (tmp / "training_args.bin").unlink(missing_ok=True)
            trainer.state.save_to_json(str(tmp / "trainer_state.json"))
            (tmp / "finetune_config.yaml").write_text(
                yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False), encoding="utf-8"
            )
            reports = {"train": train_ds.final_report(), "dev": dev_ds.final_report() if dev_ds is not None else None}
            write_model_card(tmp, _finetune_card(cfg, out_dir, family, trainer.state, reports))
            reports = {k: r.to_dict() if r is not None else None for k, r in reports.items()}
            (tmp / "finetune_data.json").write_text(json.dumps(reports, indent=2, ensure_ascii=False), encoding="utf-8")
            _publish(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not cfg.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        say(f"{trainer.state.global_step} steps; final model in {out_dir}")
    trainer.accelerator.wait_for_everyone()
    return out_dir


BUNDLED_HUB_IDS = {"tiny.en": "openai/whisper-tiny.en", "base": "openai/whisper-base"}
"""The Hub models the bundled CTranslate2 models were converted from (``bundled:NAME``)."""


def _finetune_card(cfg: FinetuneConfig, out_dir: Path, family: str, state, reports: dict):
    """The model card of a fine-tune: base, steps and optimisation, data kept, and the best dev WER if any."""
    base = BUNDLED_HUB_IDS.get(cfg.model.split(":", 1)[1], cfg.model) if cfg.model.startswith("bundled:") else cfg.model
    how = (f"Fine-tuned ({family}) with `asr-analogy finetune` for {state.global_step} optimizer steps: learning rate "
           f"{cfg.learning_rate:g} ({cfg.lr_scheduler}), batch {cfg.batch_size} × {cfg.grad_accum} accumulation per "
           f"device, seed {cfg.seed}. The full config is in `finetune_config.yaml`, the data reports in "
           f"`finetune_data.json`.\n\n- train: `{cfg.train_manifest}`: {reports['train'].summary()}")
    wer = None
    if reports["dev"] is not None:
        how += f"\n- dev: `{cfg.dev_manifest}`: {reports['dev'].summary()}"
        if state.best_metric is not None:
            wer = [{"test set": f"dev ({Path(cfg.dev_manifest).name}), best checkpoint", "normalizer": cfg.wer_normalizer,
                    "WER (%)": round(100 * float(state.best_metric), 2)}]
    record = {"steps": state.global_step, "train_hours": round(reports["train"].kept_seconds / 3600, 3)}
    return model_card(out_dir.name, relation="finetune", bases=[base], how=how, wer=wer, record=record)


def _skip_log(ckpt_dir: Path, split: str) -> Path:
    """Where the clips found unusable when read are logged (by every process and data-loader worker)."""
    return ckpt_dir / "skipped_when_read" / f"{split}.jsonl"


def _length_grouped_sampler(trainer, *args, **kwargs):
    """``Trainer._get_train_sampler``: batches of similar durations (``speech.data.LengthGroupedSampler``)."""
    from asr_analogy.speech.data import LengthGroupedSampler

    return LengthGroupedSampler(trainer.train_dataset.durations, trainer.args.train_batch_size, seed=trainer.args.seed)


def default_num_workers() -> int:
    """Data-loader worker processes when the config leaves it open: one core stays for training, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _make_trainer(cfg: FinetuneConfig, setup: _Setup, train_ds, dev_ds, ckpt_dir: Path):
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainingArguments

    cuda = torch.cuda.is_available()
    if (cfg.fp16 or cfg.bf16) and not cuda:
        log.warning("fp16/bf16 requested but no CUDA device is available; training in float32")
    has_dev = dev_ds is not None
    workers = default_num_workers() if cfg.dataloader_num_workers is None else cfg.dataloader_num_workers
    kwargs: dict[str, Any] = dict(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        num_train_epochs=cfg.num_epochs,
        seed=cfg.seed,
        fp16=cfg.fp16 and cuda,
        bf16=cfg.bf16 and cuda,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=(cfg.eval_steps or cfg.save_steps) if has_dev else None,
        load_best_model_at_end=has_dev,
        metric_for_best_model="wer" if has_dev else None,
        greater_is_better=False if has_dev else None,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,  # not forked again at every epoch and evaluation
        dataloader_pin_memory=cuda,
        use_cpu=not cuda,  # on CPU, several processes (torchrun) run as MULTI_CPU only with use_cpu
        report_to=[],
    )
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing.
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    ckpt_key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    kwargs[ckpt_key] = cfg.gradient_checkpointing
    # Whisper's and CTC's losses are means over their own batch and ignore `num_items_in_batch`. Trainer takes any
    # forward(**kwargs) to normalize by it and then skips the division by grad_accum (and multiplies by the number
    # of processes): the loss and gradients would be grad_accum × devices too large. Declare it.
    setup.model.accepts_loss_kwargs = False
    common = dict(
        model=setup.model,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        data_collator=setup.collator,
        # The feature extractor, not the processor: given a tokenizer, Trainer rewrites the model's bos/eos/pad
        # ids to the tokenizer's (Whisper's tokenizer calls <|endoftext|> its bos), and the fine-tune's config
        # would then differ from its base. The full processor is saved with the final model.
        processing_class=setup.processor.feature_extractor,
        compute_metrics=setup.compute_metrics if has_dev else None,
    )
    if setup.seq2seq:
        args = Seq2SeqTrainingArguments(
            predict_with_generate=True,
            generation_max_length=cfg.generation_max_length,
            generation_num_beams=cfg.generation_num_beams,
            **kwargs,
        )
        return _grouped(Seq2SeqTrainer)(args=args, **common)
    args = TrainingArguments(**kwargs)
    return _grouped(Trainer)(args=args, preprocess_logits_for_metrics=setup.preprocess_logits, **common)


def _grouped(trainer_class: type) -> type:
    """``trainer_class`` drawing its training batches from the length-grouped sampler."""
    return type(trainer_class.__name__, (trainer_class,), {"_get_train_sampler": _length_grouped_sampler})
