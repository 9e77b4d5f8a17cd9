"""``import-ct2``, ``export-ct2``, ``transcribe``, ``evaluate``, ``compare``, ``finetune``, ``shorten-audio-context``."""

from __future__ import annotations

import click

from asr_analogy.cli.group import main
from asr_analogy.io.atomic import refuse_overlap


@main.command("import-ct2")
@click.argument("paths", nargs=-1, metavar="[SRC_DIR] OUT_DIR")
@click.option("--bundled", metavar="NAME", help="Import a bundled model instead of SRC_DIR (tiny.en or base).")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
def import_ct2_cmd(paths, bundled, force):
    """Convert a CTranslate2 Whisper model into a transformers directory.

    \b
    asr-analogy import-ct2 SRC_DIR OUT_DIR [--force]
    asr-analogy import-ct2 --bundled tiny.en OUT_DIR
    asr-analogy import-ct2 --bundled base OUT_DIR      (multilingual Whisper base, from two pip parts)
    """
    from asr_analogy.speech.models.ct2_import import import_bundled, import_ct2

    if bundled:
        if len(paths) != 1:
            raise click.UsageError("with --bundled NAME give exactly one path: OUT_DIR")
        out = import_bundled(bundled, paths[0], force=force)
    else:
        if len(paths) != 2:
            raise click.UsageError("give SRC_DIR and OUT_DIR (or --bundled NAME OUT_DIR)")
        refuse_overlap(paths[1], [paths[0]])
        out = import_ct2(paths[0], paths[1], force=force)
    click.echo(str(out))


@main.command("export-ct2")
@click.argument("model_dir")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--quantization", default="float32", show_default=True,
              type=click.Choice(["float32", "float16", "int8"]), help="Weight type of the export.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
def export_ct2_cmd(model_dir, out_dir, quantization, force):
    """Convert a transformers Whisper MODEL_DIR into a CTranslate2 directory (faster-whisper, WhisperX).

    \b
    asr-analogy export-ct2 MODEL_DIR OUT_DIR --quantization int8
    """
    from asr_analogy.speech.models.ct2_export import export_ct2

    refuse_overlap(out_dir, [model_dir])
    click.echo(str(export_ct2(model_dir, out_dir, quantization, force=force)))


@main.command("transcribe")
@click.argument("model_dir")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.argument("out_jsonl", type=click.Path(dir_okay=False))
@click.option("--batch-size", default=16, show_default=True, help="Clips per forward pass.")
@click.option("--beams", default=1, show_default=True, help="Beam width (1 = greedy; Whisper only).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
@click.option("--max-new-tokens", type=int, default=None, help="Cap on generated tokens per clip (Whisper).")
@click.option("--language", default=None, help="Multilingual Whisper: language forced (default: the model's, else en).")
@click.option("--task", default=None, type=click.Choice(["transcribe", "translate"]),
              help="Multilingual Whisper: task forced (default: the model's, else transcribe).")
@click.option("--engine", default="transformers", show_default=True,
              type=click.Choice(["transformers", "ctranslate2"]),
              help="ctranslate2: MODEL_DIR is a CTranslate2 directory, or a transformers Whisper exported on the fly.")
@click.option("--compute-type", default=None, help="ctranslate2 engine: float32, float16, int8, ... "
              "(default: the saved type; float32 for an on-the-fly export).")
@click.option("--repetition-guard", is_flag=True,
              help="A clip decoded into a loop up to the token cap keeps one copy of the loop.")
@click.option("--resume", is_flag=True, help="Continue OUT_JSONL of an interrupted run: clips already in it are skipped.")
@click.option("--force", is_flag=True, help="Replace OUT_JSONL if it exists.")
def transcribe_cmd(model_dir, manifest, out_jsonl, batch_size, beams, device, max_new_tokens, language, task, engine,
                   compute_type, repetition_guard, resume, force):
    """Transcribe MANIFEST with MODEL_DIR; write each record plus 'hypothesis' to OUT_JSONL.

    Records are appended to OUT_JSONL batch by batch; a killed run continues with --resume.
    """
    from pathlib import Path

    from asr_analogy.errors import OutputExistsError
    from asr_analogy.speech.transcribe import transcribe

    if resume and force:
        raise click.UsageError("--resume continues OUT_JSONL and --force replaces it: give one")
    refuse_overlap(out_jsonl, [model_dir, manifest])
    if Path(out_jsonl).exists() and not (force or resume):
        raise OutputExistsError(f"{out_jsonl} already exists; pass --resume to continue it or --force to replace it")
    records = transcribe(model_dir, manifest, out_jsonl, batch_size=batch_size, num_beams=beams, device=device,
                         max_new_tokens=max_new_tokens, language=language, task=task, engine=engine,
                         compute_type=compute_type, resume=resume, repetition_guard=repetition_guard)
    failed = sum(1 for r in records if r.get("error"))
    note = f", {failed} unreadable (see their 'error' field)" if failed else ""
    click.echo(f"{out_jsonl}: {len(records)} clips transcribed{note}")


@main.command("evaluate")
@click.argument("hyps", type=click.Path(dir_okay=False))
@click.option("--normalizer", default="whisper_english", show_default=True,
              type=click.Choice(["whisper_english", "basic", "lower_punct", "none"]),
              help="Applied to references and hypotheses alike.")
@click.option("--by", default="domain", show_default=True, help="Field to group on ('' for none).")
@click.option("--out", "out_json", type=click.Path(dir_okay=False), default=None, help="Write the JSON summary here.")
@click.option("--bootstrap", default=1000, show_default=True, help="Bootstrap resamples for the 95% interval.")
@click.option("--seed", default=0, show_default=True)
@click.option("--english-spelling", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Whisper normalizer.json (British->American spellings) for whisper_english.")
def evaluate_cmd(hyps, normalizer, by, out_json, bootstrap, seed, english_spelling):
    """Print WER and CER (percent) of HYPS.jsonl per group, with bootstrap 95% intervals."""
    from asr_analogy.speech.metrics import evaluate, format_table

    if out_json:
        refuse_overlap(out_json, [hyps, english_spelling])
    summary = evaluate(hyps, out_json, normalizer=normalizer, by=by or None, bootstrap=bootstrap, seed=seed,
                       english_spelling=english_spelling)
    click.echo(format_table(summary))



@main.command("compare")
@click.argument("hyps_a", type=click.Path(dir_okay=False))
@click.argument("hyps_b", type=click.Path(dir_okay=False))
@click.option("--by", default=None, help="Field to group on (per-group lines and a pooled line); none by default.")
@click.option("--bootstrap", default=10000, show_default=True, help="Paired bootstrap resamples.")
@click.option("--seed", default=0, show_default=True)
@click.option("--normalizer", default="whisper_english", show_default=True,
              type=click.Choice(["whisper_english", "basic", "lower_punct", "none"]))
@click.option("--out", "out_json", type=click.Path(dir_okay=False), default=None, help="Write the JSON result here.")
def compare_cmd(hyps_a, hyps_b, by, bootstrap, seed, normalizer, out_json):
    """Paired bootstrap of WER(B) - WER(A) over the utterances (matched by id) both files score."""
    from asr_analogy.speech.metrics import compare, format_comparison

    if out_json:
        refuse_overlap(out_json, [hyps_a, hyps_b])
    click.echo(format_comparison(compare(hyps_a, hyps_b, out_json, by=by or None, normalizer=normalizer,
                                         bootstrap=bootstrap, seed=seed)))

def _finetune_overrides(sets: tuple[str, ...]) -> dict:
    """``--set KEY=VALUE`` of ``finetune``: the fine-tuning config's keys are flat (a dotted key is refused)."""
    from asr_analogy.io.yaml_file import parse_overrides

    return parse_overrides(sets)


@main.command("finetune")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@click.option("--force", is_flag=True, help="Replace an existing output_dir and discard old checkpoints.")
@click.option("--model", help="Override `model` (directory, hub id, bundled:tiny.en or bundled:base).")
@click.option("--output-dir", help="Override `output_dir`.")
@click.option("--max-steps", type=int, help="Override `max_steps`.")
@click.option("--learning-rate", type=float, help="Override `learning_rate`.")
@click.option("--batch-size", type=int, help="Override `batch_size`.")
@click.option("--audio-context-s", type=int, help="Override `audio_context_s` (Whisper window, seconds).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config key (repeatable).")
def finetune_cmd(config, resume, force, model, output_dir, max_steps, learning_rate, batch_size, audio_context_s, sets):
    """Fine-tune Whisper or Wav2Vec2-Conformer as configured in CONFIG (YAML); prints the final model dir.

    \b
    asr-analogy finetune CONFIG.yaml [--resume] [--max-steps N] [--set key=value ...]
    torchrun --nproc_per_node 4 -m asr_analogy finetune CONFIG.yaml     (several GPUs)
    """
    from asr_analogy.speech.train import finetune, load_finetune_config

    overrides = _finetune_overrides(sets)
    named = dict(model=model, output_dir=output_dir, max_steps=max_steps, learning_rate=learning_rate,
                 batch_size=batch_size, audio_context_s=audio_context_s)
    overrides.update({k: v for k, v in named.items() if v is not None})
    if resume:
        overrides["resume"] = True
    if force:
        overrides["force"] = True
    cfg = load_finetune_config(config, overrides)
    refuse_overlap(cfg.output_dir, [cfg.model, cfg.train_manifest, cfg.dev_manifest, config], "output_dir")
    out = finetune(cfg, echo=lambda m: click.echo(m, err=True))
    click.echo(str(out))


@main.command("shorten-audio-context")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seconds", type=click.IntRange(min=1), required=True, help="New encoder window, whole seconds (Whisper: 1-30).")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
def shorten_audio_context_cmd(model_dir, out_dir, seconds, force):
    """Copy a Whisper model with its audio window cut to SECONDS (the base for audio_context_s fine-tunes)."""
    from asr_analogy.speech.models.whisper import shorten_audio_context

    refuse_overlap(out_dir, [model_dir])
    click.echo(str(shorten_audio_context(model_dir, out_dir, seconds, force=force)))
