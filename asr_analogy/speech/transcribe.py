"""Batched transcription of a manifest with a Whisper (sequence-to-sequence) or CTC model.

Clips are sorted by duration so each batch holds clips of similar length, transcribed in batches, and the
results are put back in manifest order. Whisper decodes with ``generate`` (greedy, or beam search with
``num_beams > 1``); CTC models (Wav2Vec2, Wav2Vec2-Conformer, ...) decode with argmax over frames and the
tokenizer's CTC collapse. A clip that cannot be read gets an ``error`` field and an empty ``hypothesis``;
the rest of its batch is transcribed as usual.

Whisper's encoder takes a fixed window of ``2 * config.max_source_positions`` mel frames (10 ms each; 30 s
for the original models). Models saved with a shorter window (``audio_context_s``) are honoured: features are
padded to the model's window, whatever the feature extractor passed in says. Audio longer than the window is
cut to it (and counted in the log); long-form transcription is not done here.

Two engines decode Whisper: transformers (``generate``) and CTranslate2 (``ct2_engine``, the runtime of
faster-whisper), on the same features and prompt. Records are appended to the output as their batch finishes
(``transcript_file``), so a killed run can be resumed where it stopped.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from asr_analogy.errors import AsrAnalogyError, ConfigError, ManifestError
from asr_analogy.io.audio import TARGET_SR, load_audio
from asr_analogy.io.manifest import read_manifest, write_manifest
from asr_analogy.merge.stream import resolve_device
from asr_analogy.speech.ct2_engine import Ct2Whisper, new_token_cap
from asr_analogy.speech.repetition import guard
from asr_analogy.speech.transcript_file import TranscriptAppender, match_finished, read_finished

log = logging.getLogger(__name__)


def load_asr_model(model_dir: str | os.PathLike, device: str | torch.device | None = None):
    """Load (model, processor) from a ``save_pretrained`` directory or hub id; Whisper or a CTC model.

    Raises ``ConfigError`` naming the directory when it holds neither.
    """
    from transformers import AutoConfig, AutoModelForCTC, AutoProcessor, WhisperForConditionalGeneration

    path = Path(model_dir)
    name = str(model_dir)
    if not path.exists() and (path.is_absolute() or name.startswith(".") or name.count("/") > 1):
        raise ConfigError(f"model directory {path} does not exist")
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name}: not a transformers model directory ({exc})") from None
    try:
        if config.model_type == "whisper":
            model = WhisperForConditionalGeneration.from_pretrained(name)
        else:
            model = AutoModelForCTC.from_pretrained(name)
        processor = AutoProcessor.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot load the model or its processor ({exc})") from None
    model.eval()
    if device is not None:
        model.to(device)
    return model, processor


def _records(manifest_or_records) -> list[dict]:
    if isinstance(manifest_or_records, (str, os.PathLike)):
        return read_manifest(manifest_or_records)
    recs = [dict(r) for r in manifest_or_records]
    for i, rec in enumerate(recs):
        if "audio_filepath" not in rec:
            raise ConfigError(f"record #{i} has no 'audio_filepath'")
    return recs


def _duration(rec: dict) -> float:
    """Duration in seconds for sorting: the manifest's value, else the file header, else 0 (unreadable)."""
    dur = rec.get("duration")
    if isinstance(dur, (int, float)):
        return float(dur)
    try:
        import soundfile as sf

        return float(sf.info(rec["audio_filepath"]).duration)
    except Exception:
        return 0.0


def whisper_feature_extractor(processor, max_source_positions: int):
    """The processor's feature extractor, with its window set to a Whisper encoder window of
    ``max_source_positions`` positions (``2 * max_source_positions`` mel frames) if they differ."""
    fe = processor.feature_extractor
    frames = 2 * int(max_source_positions)
    if fe.nb_max_frames == frames:
        return fe
    fe = copy.copy(fe)
    fe.nb_max_frames = frames
    fe.n_samples = frames * fe.hop_length
    fe.chunk_length = fe.n_samples / fe.sampling_rate
    return fe


def _is_whisper(model) -> bool:
    return getattr(model.config, "model_type", None) == "whisper"


class _MaskSuppress:
    """Logits processor: set the scores of a fixed token set to -inf, from a mask built once.

    Equivalent to transformers' ``SuppressTokensLogitsProcessor`` / ``SuppressTokensAtBeginLogitsProcessor``
    (same tokens, same steps, same -inf), which rebuild the mask with ``torch.isin`` over the whole vocabulary
    at every decoding step; on CPU that rebuilding costs as much as the decoder step itself for Whisper tiny.
    With ``only_first_step`` the mask applies at the first generated position only (Whisper's begin-suppress:
    no blank or end-of-text as the first token), which is the length of ``input_ids`` at the first call.
    """

    def __init__(self, token_ids, vocab_size: int, device, only_first_step: bool = False):
        self.mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        ids = torch.tensor([int(t) for t in token_ids if 0 <= int(t) < vocab_size], dtype=torch.long)
        self.mask[ids.to(device)] = True
        self.only_first_step = only_first_step
        self.first_len = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.only_first_step:
            if self.first_len is None:
                self.first_len = input_ids.shape[-1]
            if input_ids.shape[-1] != self.first_len:
                return scores
        return scores.masked_fill(self.mask[: scores.shape[-1]], -float("inf"))


# generate options under which Whisper's first generated position is not simply the first decoding step.
_KEEP_STOCK_SUPPRESSION = {"prompt_ids", "decoder_input_ids", "return_timestamps", "assistant_model", "logits_processor"}


def _suppression_processors(model, gen_kwargs: dict) -> tuple[dict, list]:
    """(generate kwargs that switch off the stock suppression, equivalent precomputed-mask processors)."""
    cfg = model.generation_config
    if _KEEP_STOCK_SUPPRESSION & set(gen_kwargs) or getattr(cfg, "return_timestamps", False):
        return {}, []
    suppress = gen_kwargs.get("suppress_tokens", cfg.suppress_tokens)
    begin = gen_kwargs.get("begin_suppress_tokens", cfg.begin_suppress_tokens)
    vocab, device = model.config.vocab_size, model.device
    procs = []
    if begin:
        procs.append(_MaskSuppress(begin, vocab, device, only_first_step=True))
    if suppress:
        procs.append(_MaskSuppress(suppress, vocab, device))
    return {"suppress_tokens": None, "begin_suppress_tokens": None}, procs


def _language_and_task(gen, language: str | None, task: str | None, gen_kwargs: dict) -> tuple[list[int], dict]:
    """(the forced prompt ids, ``generate`` keys that force the language and task of a multilingual Whisper).

    The prompt comes from ``whisper_tokens.forced_prefix``, which raises ``ConfigError`` for a language or task
    the model does not have; an English-only model gets no keys (after checking they ask for English)."""
    from asr_analogy.speech.models.whisper_tokens import forced_prefix, language_token

    language = language or gen_kwargs.get("language") or getattr(gen, "language", None) or "en"
    task = task or gen_kwargs.get("task") or getattr(gen, "task", None) or "transcribe"
    prompt = forced_prefix(gen, language, task)
    if not getattr(gen, "is_multilingual", False):
        return prompt, {}
    return prompt, {"language": language_token(language), "task": task}


@torch.inference_mode()
def _whisper_batch(model, processor, fe, audios: list[np.ndarray], num_beams: int, max_new_tokens, gen_kwargs,
                   guard_cap: int | None = None):
    """Texts of ``audios``; ``guard_cap``: the repetition guard is on, and an output of this many text tokens
    reached the token cap (``ct2_engine.new_token_cap``)."""
    # The log-mel spectrogram is computed with torch, on the model's GPU when it has one.
    fe_device = "cuda" if model.device.type == "cuda" else "cpu"
    feats = fe(audios, sampling_rate=TARGET_SR, return_tensors="pt", device=fe_device)
    x = feats.input_features.to(device=model.device, dtype=model.dtype)
    kwargs = dict(gen_kwargs)
    kwargs["num_beams"] = num_beams
    if num_beams > 1:
        kwargs.setdefault("do_sample", False)
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = max_new_tokens
    off, procs = _suppression_processors(model, kwargs)
    if procs:
        from transformers import LogitsProcessorList

        kwargs.update(off)
        kwargs["logits_processor"] = LogitsProcessorList(procs)
    ids = model.generate(x, **kwargs)
    if not torch.is_tensor(ids):  # some generate options return a dict-like output
        ids = ids["sequences"]
    if guard_cap is not None:
        # generate returns the new tokens (without the end token, padded with it), or in older versions the
        # prompt and the end token too: the text tokens, below Whisper's first special token, are the same
        eos = model.generation_config.eos_token_id
        first_special = min(eos) if isinstance(eos, (list, tuple)) else eos
        texts = ([t for t in row if t < first_special] for row in ids.tolist())
        ids = [guard(text, reached_cap=len(text) >= guard_cap) for text in texts]
    return [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]


@torch.inference_mode()
def _ctc_batch(model, processor, audios: list[np.ndarray]):
    inputs = processor(audios, sampling_rate=TARGET_SR, return_tensors="pt", padding=True)
    kwargs = {"input_values": inputs.input_values.to(device=model.device, dtype=model.dtype)}
    if "attention_mask" in inputs:
        kwargs["attention_mask"] = inputs.attention_mask.to(model.device)
    logits = model(**kwargs).logits  # (batch, frames, vocab)
    ids = logits.argmax(dim=-1).cpu()
    # Frames computed from padding are not part of a clip: keep each clip's own number of output frames.
    n_samples = torch.tensor([len(a) for a in audios])
    n_frames = model._get_feat_extract_output_lengths(n_samples).tolist()
    return [processor.decode(row[: int(n)]).strip() for row, n in zip(ids, n_frames)]


ENGINES = ("transformers", "ctranslate2")
"""Decoding back ends: transformers (Whisper and CTC models) or CTranslate2 (Whisper; ``ct2_engine``)."""


def _transformers_decoder(model, processor, device, num_beams, max_new_tokens, generate_kwargs, language, task,
                          repetition_guard=False):
    """(decode: audios → texts, encoder window in samples or None) for a transformers model (dir or loaded)."""
    if isinstance(model, (str, os.PathLike)):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, loaded_processor = load_asr_model(model, device)
        processor = processor or loaded_processor
    else:
        if device is not None:
            model.to(device)
        model.eval()
        if processor is None:
            from transformers import AutoProcessor

            source = getattr(model, "name_or_path", "") or ""
            if not source or not Path(source).is_dir():
                raise ConfigError("transcribe(model=<loaded model>) needs processor=... (the model has no directory)")
            processor = AutoProcessor.from_pretrained(source)
    if not _is_whisper(model):
        if num_beams > 1:
            raise ConfigError("beam search (num_beams > 1) is only available for Whisper; CTC decoding is argmax")
        if language is not None or task is not None:
            raise ConfigError("language and task apply to Whisper models only")
        return (lambda audios: _ctc_batch(model, processor, audios)), None
    fe = whisper_feature_extractor(processor, model.config.max_source_positions)
    gen_kwargs = dict(generate_kwargs or {})
    prompt, forced = _language_and_task(model.generation_config, language, task, gen_kwargs)
    gen_kwargs.update(forced)
    cap = new_token_cap(model.generation_config, len(prompt), max_new_tokens) if repetition_guard else None
    return (lambda audios: _whisper_batch(model, processor, fe, audios, num_beams, max_new_tokens, gen_kwargs, cap),
            fe.n_samples)


def _ct2_decoder(model, device, compute_type, num_beams, max_new_tokens, language, task, repetition_guard=False):
    """(decode, window in samples) for a CTranslate2 Whisper: a ``Ct2Whisper``, a CTranslate2 directory, or a
    transformers Whisper directory exported on the fly at ``compute_type``."""
    if not isinstance(model, Ct2Whisper):
        if not isinstance(model, (str, os.PathLike)):
            raise ConfigError("the ctranslate2 engine takes a model directory (CTranslate2 or transformers Whisper)")
        model = Ct2Whisper(model, device, compute_type)
    prompt = _language_and_task(model.generation_config, language, task, {})[0]
    return (lambda audios: model.decode(audios, prompt, num_beams, max_new_tokens, repetition_guard),
            model.window_samples)


def _check_options(batch_size: int, num_beams: int, max_new_tokens: int | None, engine: str, options: dict) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if num_beams < 1:
        raise ConfigError(f"num_beams must be >= 1, got {num_beams}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    only = {"ctranslate2": ("processor", "generate_kwargs"), "transformers": ("compute_type",)}[engine]
    given = [name for name in only if options.get(name) is not None]
    if given:
        raise ConfigError(f"{given[0]} does not apply to the {engine} engine")


def transcribe(
    model,
    manifest_or_records: str | os.PathLike | Iterable[dict],
    out_jsonl: str | os.PathLike | None = None,
    *,
    processor=None,
    batch_size: int = 16,
    num_beams: int = 1,
    device: str | torch.device | None = None,
    max_new_tokens: int | None = None,
    generate_kwargs: dict | None = None,
    progress: bool = True,
    language: str | None = None,
    task: str | None = None,
    engine: str | None = None,
    compute_type: str | None = None,
    resume: bool = False,
    repetition_guard: bool = False,
) -> list[dict]:
    """Transcribe every clip of a manifest; return records in manifest order, each with ``hypothesis`` added.

    ``model`` is a ``save_pretrained`` directory (or hub id) or an already-loaded model; a loaded model needs
    ``processor`` unless its ``name_or_path`` is a directory holding one. ``batch_size`` clips per forward
    pass (after sorting by duration, longest first); ``num_beams`` 1 is greedy, more is beam search (Whisper
    only; CTC decoding is argmax). ``device``: e.g. ``"cpu"`` or ``"cuda"`` (default: where a loaded model is,
    else CUDA when available). ``max_new_tokens``: cap on generated tokens per clip (default: the generation
    config's). ``generate_kwargs``: passed on to Whisper's ``generate``.

    ``engine``: ``"transformers"`` (the default) or ``"ctranslate2"`` (Whisper only): ``model`` is then a
    CTranslate2 directory (``export-ct2``), a ``ct2_engine.Ct2Whisper``, or a transformers Whisper directory
    exported on the fly with weights of type ``compute_type`` (``float32``, ``float16`` or ``int8``; for a
    CTranslate2 directory, CTranslate2's compute type, default the saved one). Same sorting, batches, features,
    prompt, suppressed tokens and token cap as the transformers engine; greedy transcripts agree up to the
    numerics of the runtime (and of the quantization).

    ``repetition_guard``: a clip whose decoding reaches the token cap without ending, in a loop of one repeated
    token sequence (at least 3 copies), keeps its text up to the end of the first copy
    (``asr_analogy.speech.repetition``); clips that end on their own are unchanged. Off by default.

    ``language`` (``"en"``, ``"english"`` or ``"<|en|>"``) and ``task`` (``"transcribe"`` or ``"translate"``):
    a multilingual Whisper decodes after the forced prompt ``<|startoftranscript|><|en|><|transcribe|>
    <|notimestamps|>``; the defaults are the model's generation config (a multilingual fine-tune saves its own),
    else English and transcribe (this toolkit is for English speech; language detection is not used). An
    English-only model accepts only English / transcribe (or nothing) and decodes as before.

    Unreadable clips get ``error`` (the message) and ``hypothesis: ""``. With ``out_jsonl`` each batch's
    records are appended there as they finish (flushed and synced); at the end the file is rewritten
    atomically in manifest order (audio paths relative to it when under its directory). ``resume``: keep the
    records ``out_jsonl`` already holds (matched by ``id``, else by audio path; a torn last line is dropped)
    and decode only the others, in the same batches, so a killed run resumed gives the same file as an
    uninterrupted one. Without ``resume`` the file is started anew.
    """
    engine = engine or ("ctranslate2" if isinstance(model, Ct2Whisper) else "transformers")
    _check_options(batch_size, num_beams, max_new_tokens, engine,
                   {"processor": processor, "generate_kwargs": generate_kwargs, "compute_type": compute_type})
    if resume and out_jsonl is None:
        raise ConfigError("resume needs out_jsonl, the file to continue")
    records = _records(manifest_or_records)
    if not records:
        where = manifest_or_records if isinstance(manifest_or_records, (str, os.PathLike)) else "the records"
        raise ManifestError(f"{where}: no record to transcribe (the manifest is empty)")
    if device is not None:
        device = str(resolve_device(device))
    finished = {}
    if out_jsonl is not None and resume:
        finished = match_finished(records, read_finished(out_jsonl), out_jsonl)
        for i, done in finished.items():
            records[i].pop("error", None)
            records[i].update({k: done[k] for k in ("hypothesis", "error") if k in done})
        if finished:
            log.info("resuming %s: %d of %d clips already transcribed", out_jsonl, len(finished), len(records))
    if len(finished) == len(records):  # nothing left to decode: the model is not loaded
        decode, window = None, None
    elif engine == "ctranslate2":
        decode, window = _ct2_decoder(model, device, compute_type, num_beams, max_new_tokens, language, task,
                                      repetition_guard)
    else:
        decode, window = _transformers_decoder(model, processor, device, num_beams, max_new_tokens,
                                               generate_kwargs, language, task, repetition_guard)
    appender = TranscriptAppender(out_jsonl, fresh=not resume) if out_jsonl is not None else None
    try:
        n_truncated = _run_batches(records, finished, decode, window, batch_size, appender, progress)
    finally:
        if appender is not None:
            appender.close()
    n_errors = sum(1 for r in records if r.get("error"))
    if n_errors == len(records):
        if out_jsonl is not None:
            Path(out_jsonl).unlink(missing_ok=True)
        first = next(r["error"] for r in records if r.get("error"))
        raise ManifestError(f"none of the {len(records)} clips could be read (first: {first}); nothing was written")
    if n_errors:
        log.warning("%d of %d clips could not be read (see their 'error' field)", n_errors, len(records))
    if n_truncated:
        log.warning("%d of %d clips were cut to the %.1f s encoder window", n_truncated, len(records),
                    window / TARGET_SR)
    if out_jsonl is not None:
        write_manifest(records, out_jsonl)
    return records


def _run_batches(records: list[dict], finished: dict, decode, window: int | None, batch_size: int, appender,
                 progress: bool) -> int:
    """Decode ``records`` (longest first, ``batch_size`` at a time) into their ``hypothesis``, appending each
    batch's new records to ``appender``. A batch is decoded whole unless all of it is ``finished`` (so a resumed
    run decodes each clip in the same batch as an uninterrupted one); finished records keep their text.
    Returns how many clips were longer than the encoder ``window`` (samples)."""
    order = sorted(range(len(records)), key=lambda i: -_duration(records[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    bar = None
    if progress and batches:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), initial=len(finished), desc="transcribe", unit="clip", leave=False)
    n_truncated = 0
    for batch in batches:
        todo = [i for i in batch if i not in finished]
        if not todo:
            continue
        good, audios = [], []
        for i in batch:
            rec, new = records[i], i not in finished
            if new:
                rec.pop("error", None)
            try:
                audio = load_audio(rec["audio_filepath"])
            except AsrAnalogyError as exc:
                if new:
                    rec["hypothesis"] = ""
                    rec["error"] = str(exc)
                    log.warning("skipping clip: %s", exc)
                continue
            if new and window is not None and len(audio) > window:
                n_truncated += 1
                log.debug("%s is longer than the %.1f s encoder window; cut to it", rec["audio_filepath"],
                          window / TARGET_SR)
            good.append(i)
            audios.append(audio)
        if audios:
            for i, hyp in zip(good, decode(audios)):
                if i not in finished:
                    records[i]["hypothesis"] = hyp
        if appender is not None:
            appender.append([records[i] for i in todo])
        if bar is not None:
            bar.update(len(todo))
    if bar is not None:
        bar.close()
    return n_truncated
