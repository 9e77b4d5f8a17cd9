"""The ``asr-analogy`` command: thin click wrappers around public functions of the same name.

Each command imports its implementation lazily so ``asr-analogy --help`` stays fast. Errors derived from
``AsrAnalogyError`` are printed as ``error: <message>`` with exit status 2, no traceback.
"""

from __future__ import annotations

import os
import sys

import click

from asr_analogy.errors import AsrAnalogyError
from asr_analogy.io.atomic import refuse_overlap


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what failed and where (disk full, permission denied, ...)."""
    where = f" {exc.filename}" if exc.filename is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{what}:{where}" if where else what


class _Group(click.Group):
    """Errors a user can act on end as one line ``error: ...`` and exit status 2; ``--debug`` (or
    ``ASR_ANALOGY_DEBUG=1``) shows the traceback instead."""

    def invoke(self, ctx):
        debug = bool(os.environ.get("ASR_ANALOGY_DEBUG")) or bool((ctx.params or {}).get("debug"))
        try:
            return super().invoke(ctx)
        except (AsrAnalogyError, OSError, UnicodeDecodeError) as exc:
            if debug:
                raise
            if isinstance(exc, OSError) and not isinstance(exc, AsrAnalogyError):
                message = os_error_message(exc)
            elif isinstance(exc, UnicodeDecodeError):
                message = f"input is not UTF-8 text ({exc.reason} at byte {exc.start})"
            else:
                message = str(exc)
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asr-analogy")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
def main(debug: bool) -> None:
    """Adapt speech recognizers to new domains by task-vector arithmetic."""


# ---- merge core ------------------------------------------------------------------------------------------


@main.command("merge")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--shard-size", default="5GB", show_default=True, help="Largest output shard, e.g. 2GB, 500MB, or bytes.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N, or auto (cuda when available).")
@click.option("--dtype", default=None, help="Merge in this dtype (float32, float64, ...); also the output dtype unless --out-dtype.")
@click.option("--out-dtype", default=None, help="Dtype of the written weights (default: --dtype, else the inputs').")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def merge_cmd(config, out_dir, shard_size, device, dtype, out_dtype, force, quiet):
    """Merge the checkpoints described by CONFIG (mergekit-style YAML or analogy:) into OUT_DIR."""
    from asr_analogy.merge import merge, tune_malloc

    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap

    out = merge(config, out_dir, force=force, shard_size=shard_size, device=device, dtype=dtype, out_dtype=out_dtype,
                progress=not quiet)
    click.echo(str(out))


@main.command("vector")
@click.argument("finetuned")
@click.argument("base")
@click.argument("out")
@click.option("--dtype", default=None, help="Dtype of the vector (default: the models', float32 for half precision).")
@click.option("--shard-size", default="5GB", show_default=True, help="Largest shard when OUT is a directory.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def vector_cmd(finetuned, base, out, dtype, shard_size, force, quiet):
    """Save the task vector FINETUNED - BASE to OUT (a .safetensors file or a directory)."""
    from asr_analogy.merge import vector, tune_malloc

    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap

    click.echo(str(vector(finetuned, base, out, force=force, dtype=dtype, shard_size=shard_size, progress=not quiet)))


@main.command("apply-vector")
@click.argument("base")
@click.argument("vector_path", metavar="VECTOR")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--scale", default=1.0, show_default=True, type=float, help="Multiplier of the vector (-1 negates).")
@click.option("--allow-other-base", is_flag=True, help="Apply even if BASE is not the model the vector was computed from.")
@click.option("--out-dtype", default=None, help="Dtype of the written weights (default: BASE's).")
@click.option("--shard-size", default="5GB", show_default=True, help="Largest output shard.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def apply_vector_cmd(base, vector_path, out_dir, scale, allow_other_base, out_dtype, shard_size, force, quiet):
    """Write BASE + SCALE * VECTOR to OUT_DIR (checks that VECTOR was computed from BASE)."""
    from asr_analogy.merge import apply_vector, tune_malloc

    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap

    click.echo(str(apply_vector(base, vector_path, out_dir, scale=scale, force=force, allow_other_base=allow_other_base,
                                out_dtype=out_dtype, shard_size=shard_size, progress=not quiet)))


# ---- speech models ---------------------------------------------------------------------------------------


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
@click.option("--force", is_flag=True, help="Replace OUT_JSONL if it exists.")
def transcribe_cmd(model_dir, manifest, out_jsonl, batch_size, beams, device, max_new_tokens, language, task, force):
    """Transcribe MANIFEST with MODEL_DIR; write each record plus 'hypothesis' to OUT_JSONL."""
    from pathlib import Path

    from asr_analogy.errors import OutputExistsError
    from asr_analogy.speech.transcribe import transcribe

    refuse_overlap(out_jsonl, [model_dir, manifest])
    if Path(out_jsonl).exists() and not force:
        raise OutputExistsError(f"{out_jsonl} already exists; pass --force to replace it")
    records = transcribe(model_dir, manifest, out_jsonl, batch_size=batch_size, num_beams=beams, device=device,
                         max_new_tokens=max_new_tokens, language=language, task=task)
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


# ---- data and TTS ----------------------------------------------------------------------------------------


@main.group("prep")
def prep() -> None:
    """Prepare a corpus: audio plus manifest.jsonl with domain/split, and a skip report."""


@prep.command("ivr-prompts")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--from", "from_dir", type=click.Path(exists=True, file_okay=False),
              help="Unpacked packages, or a folder with the two .deb files (default: apt-get download).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where fetched packages are kept.")
@click.option("--force", is_flag=True, help="Rebuild OUT_DIR even if it is already prepared.")
@click.option("--apt-update", is_flag=True,
              help="Run 'apt-get update' (as root) when apt does not know the packages yet (a fresh machine).")
def prep_ivr_prompts(out_dir, from_dir, cache_dir, force, apt_update):
    """The Asterisk IVR prompts (Debian asterisk-core-sounds-en-wav): real 8 kHz telephone speech -> 16 kHz."""
    from data_prep.ivr_prompts import prepare

    refuse_overlap(out_dir, [from_dir, cache_dir])
    prepare(from_dir, out_dir, cache_dir=cache_dir, update_index=apt_update, force=force, echo=click.echo)


def _known_split(ctx, param, value):
    """``--split``: train, dev or test (``validation`` and the like map to dev, as in the inputs)."""
    from data_prep._common import SPLITS, normalize_split

    if value is not None and normalize_split(value) not in SPLITS:
        raise click.BadParameter(f"{value!r} is not a split; use one of {', '.join(SPLITS)}")
    return value


def _prep_common(f):
    """Options shared by the importers: fields to fill, resampling, overwrite."""
    for opt in reversed([
        click.option("--domain", help="Domain for utterances the input does not label."),
        click.option("--split", callback=_known_split, help="Split (train/dev/test) for utterances the input does not label."),
        click.option("--source", type=click.Choice(["real", "synthetic"]), default="real", show_default=True),
        click.option("--speaker", help="Speaker for utterances the input does not label."),
        click.option("--resample", is_flag=True, help="Write 16 kHz mono wavs under OUT_DIR/audio."),
        click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists."),
    ]):
        f = opt(f)
    return f


@prep.command("csv")
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--path-column", help="Audio path column: a header name or a 0-based number.")
@click.option("--text-column", help="Transcript column: a header name or a 0-based number.")
@click.option("--delimiter", help="Field delimiter (default: tab for .tsv, else sniffed).")
@click.option("--header/--no-header", default=None, help="Whether the first row names the columns (default: detect).")
@click.option("--audio-root", type=click.Path(file_okay=False),
              help="Base of relative audio paths (default: the table's folder).")
@_prep_common
def prep_csv(table, out_dir, path_column, text_column, delimiter, header, audio_root, **kw):
    """A CSV/TSV table of audio paths and transcripts."""
    from data_prep.tabular import prepare

    delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
    if delimiter is not None and len(delimiter) != 1:
        raise click.BadParameter(f"{delimiter!r}: give one character (\\t for tab)", param_hint="--delimiter")
    refuse_overlap(out_dir, [table, audio_root])
    prepare(table, out_dir, path_column=path_column, text_column=text_column, delimiter=delimiter, header=header,
            audio_root=audio_root, echo=click.echo, **kw)


@prep.command("audiofolder")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--text-column", help="Transcript column of metadata.csv/jsonl (default: transcription, text, ...).")
@_prep_common
def prep_audiofolder(folder, out_dir, text_column, **kw):
    """A folder of audio files with metadata.csv or metadata.jsonl (file_name + transcription/text)."""
    from data_prep.audiofolder import prepare

    refuse_overlap(out_dir, [folder])
    prepare(folder, out_dir, text_column=text_column, echo=click.echo, **kw)


@prep.command("hf-dataset")
@click.argument("dataset")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--config", "config_name", help="Dataset configuration (hub ids only).")
@click.option("--revision", help="Dataset revision (hub ids only).")
@click.option("--split", "splits", multiple=True, help="Dataset split to import (repeatable; default all).")
@click.option("--audio-column", default="audio", show_default=True)
@click.option("--text-column", help="Transcript column (default: text, sentence, transcription, ...).")
@click.option("--id-column", help="Column naming utterances (default: <split>/<row>).")
@click.option("--domain", help="Domain for utterances the dataset does not label.")
@click.option("--source", type=click.Choice(["real", "synthetic"]), default="real", show_default=True)
@click.option("--speaker", help="Speaker for utterances the dataset does not label.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
def prep_hf_dataset(dataset, out_dir, config_name, revision, splits, audio_column, text_column, id_column, domain,
                    source, speaker, force):
    """A Hugging Face dataset: a save_to_disk directory, or a hub id when the hub is reachable."""
    from data_prep.hf_dataset import prepare

    refuse_overlap(out_dir, [dataset])
    prepare(dataset, out_dir, config=config_name, revision=revision, splits=list(splits) or None,
            audio_column=audio_column, text_column=text_column, id_column=id_column, domain=domain, source=source,
            speaker=speaker, force=force, echo=click.echo)


@prep.command("nemo")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--supervisions", type=click.Path(exists=True, dir_okay=False),
              help="Lhotse supervisions manifest, when MANIFEST holds Lhotse recordings.")
@click.option("--audio-root", type=click.Path(file_okay=False), help="Base of relative audio paths.")
@_prep_common
def prep_nemo(manifest, out_dir, supervisions, audio_root, **kw):
    """A NeMo manifest or Lhotse cuts / recordings+supervisions (JSONL, optionally .gz)."""
    from data_prep.nemo_jsonl import prepare

    refuse_overlap(out_dir, [manifest, supervisions, audio_root])
    prepare(manifest, out_dir, supervisions=supervisions, audio_root=audio_root, echo=click.echo, **kw)


@prep.command("slurp")
@click.argument("slurp_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--subset", "subsets", multiple=True,
              type=click.Choice(["train", "devel", "test", "train_synthetic"]), help="Repeatable; default all.")
@click.option("--audio-dir", type=click.Path(file_okay=False), help="Folder holding slurp_real/ and slurp_synth/.")
@click.option("--headset-only", is_flag=True, help="Keep only close-talk recordings of the real subsets.")
@click.option("--resample", is_flag=True, help="Write 16 kHz mono wavs under OUT_DIR/audio.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
def prep_slurp(slurp_dir, out_dir, subsets, audio_dir, headset_only, resample, force):
    """SLURP from a local copy of the release: its 18 scenarios as domains."""
    from data_prep.slurp import SUBSETS, prepare

    refuse_overlap(out_dir, [slurp_dir, audio_dir])
    prepare(slurp_dir, out_dir, subsets=list(subsets) or SUBSETS, audio_dir=audio_dir, headset_only=headset_only,
            resample=resample, force=force, echo=click.echo)


def _tts_options(items: tuple[str, ...]) -> dict:
    """--option KEY=VALUE pairs; true/false, integers and decimals are converted."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.UsageError(f"--option expects KEY=VALUE, got {item!r}")
        low = value.strip().lower()
        out[key.strip()] = True if low == "true" else False if low == "false" else _number_or_text(value.strip())
    return out


def _number_or_text(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


@main.command("synthesize")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--backend", "-b", default="piper", show_default=True, help="piper, hibari, espeak, coqui, transformers.")
@click.option("--voice", "-v", "voices", multiple=True, help="Repeatable or comma-separated; default: the backend's.")
@click.option("--samples-per-sentence", "-n", type=int, default=1, show_default=True)
@click.option("--speed", "speeds", type=float, multiple=True, help="Speed factor (1.0 = the voice's pace); repeatable.")
@click.option("--pitch", "pitches", type=float, multiple=True, help="Pitch shift in semitones; repeatable.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", "-j", type=int, default=2, show_default=True, help="Worker processes.")
@click.option("--channel", "channels", multiple=True, help="telephone | noise:snr_db=20 | reverb:rt60=0.3; repeat to chain.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Default ~/.cache/asr_analogy/tts.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Backend option (model=DIR, ...).")
@click.option("--no-normalize", is_flag=True, help="Speak the text as is (no English number/symbol spelling).")
@click.option("--force", is_flag=True, help="Replace a finished OUT_DIR made with other settings.")
def synthesize_cmd(input_path, out_dir, backend, voices, samples_per_sentence, speeds, pitches, seed, workers, channels,
                   cache_dir, options, no_normalize, force):
    """Synthesize INPUT (a text file, one sentence a line, or a JSONL manifest's `text`) into OUT_DIR:
    16 kHz wavs, manifest.jsonl (source: synthetic) and skipped.jsonl."""
    from asr_analogy.speech.tts import synthesize
    from asr_analogy.speech.tts.pipeline import iter_voices

    refuse_overlap(out_dir, [input_path])
    synthesize(input_path, out_dir, backend=backend, voices=iter_voices(voices), samples_per_sentence=samples_per_sentence,
               seed=seed, workers=workers, channel=list(channels) or None, cache_dir=cache_dir, speeds=list(speeds),
               pitches=list(pitches), normalize=not no_normalize, backend_options=_tts_options(options), force=force)


@main.command("list-voices")
@click.option("--backend", "-b", default="piper", show_default=True)
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Backend option (model=DIR, ...).")
def list_voices_cmd(backend, options):
    """Voices of a TTS backend that are installed (nothing is downloaded)."""
    from asr_analogy.speech.tts import list_voices

    for voice in list_voices(backend, **_tts_options(options)):
        click.echo(voice)


# ---- syn2real ----------------------------------------------------------------------------------------------


def _recipe_sets(sets: tuple[str, ...]) -> dict | None:
    from asr_analogy.io.yaml_file import parse_overrides

    return parse_overrides(sets) or None


_STAGE_HELP = "prep, synthesize, finetune, vectors, select_lambda, evaluate, report"


@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--variant", default=None, help="A named variant of the config (its `variants:` section).")
@click.option("--from-stage", default=None, help=f"Rerun from this stage even if complete ({_STAGE_HELP}).")
@click.option("--stop-stage", default=None, help="Stop after this stage.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. finetune.max_steps=20.")
@click.option("--dry-run", is_flag=True, help="Validate the config and print the planned stages; write nothing.")
def run_cmd(config, variant, from_stage, stop_stage, sets, dry_run):
    """Run a syn2real recipe (every target of CONFIG); complete stages are skipped."""
    from asr_analogy.analogy.recipe import run

    run(config, variant=variant, overrides=_recipe_sets(sets), from_stage=from_stage, stop_stage=stop_stage,
        dry_run=dry_run, echo=click.echo)


@main.command("demo")
@click.option("--variant", default="demo", show_default=True,
              help="Variant of recipes/ivr_syn2real/config.yaml to run (demo_noisy: real speech in noise).")
@click.option("--target", default=None, help="Target domain (default: the demo variant's, voicemail).")
@click.option("--exp-dir", default=None, help="Where exp/<name>/ goes (default: exp).")
@click.option("--from-stage", default=None, help=f"Rerun from this stage even if complete ({_STAGE_HELP}).")
@click.option("--stop-stage", default=None, help="Stop after this stage.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--dry-run", is_flag=True, help="Validate and print the planned stages; write nothing.")
def demo_cmd(variant, target, exp_dir, from_stage, stop_stage, sets, dry_run):
    """The offline syn2real demo: Whisper tiny.en, the Debian IVR prompts, one target domain."""
    from asr_analogy.analogy.recipe import demo

    demo(variant=variant, target=target, exp_dir=exp_dir, overrides=_recipe_sets(sets), from_stage=from_stage,
         stop_stage=stop_stage, dry_run=dry_run, echo=click.echo)


# ---- task vectors as gear: store, diagnose, compress (asr_analogy.store.commands) --------------------------

from asr_analogy.store.commands import compress_cmd, diagnose_cmd, store_group  # noqa: E402

for _verb in (store_group, diagnose_cmd, compress_cmd):
    main.add_command(_verb)
