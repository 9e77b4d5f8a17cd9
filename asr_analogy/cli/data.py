"""``prep`` (one subcommand per corpus), ``synthesize``, ``list-voices``."""

from __future__ import annotations

import click

from asr_analogy.cli.group import main
from asr_analogy.io.atomic import refuse_overlap


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
