"""A Hugging Face ``datasets`` speech dataset: a directory saved with ``save_to_disk``, or a hub id.

Audio is read without the ``datasets`` decoders (which need torchcodec): the audio column is cast to
``Audio(decode=False)``, which yields the stored file bytes and/or a path; soundfile decodes them and every
utterance is written as 16 kHz mono wav under ``OUT_DIR/audio``. A ``DatasetDict`` contributes each of its
splits (``validation`` becomes ``dev``). Hub ids need the hub: with ``HF_HUB_OFFLINE`` or
``HF_DATASETS_OFFLINE`` set, a name that is not a local directory is an error that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from asr_analogy.io.skips import SkipReport
from data_prep._common import CARRY_FIELDS, CorpusError, Entry, normalize_split
from data_prep._options import ImportOptions

CORPUS = "hf-dataset"
TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text", "raw_text")
_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def load(dataset: str | os.PathLike, *, config: str | None = None, revision: str | None = None):
    """Open a saved dataset directory (``load_from_disk``) or, when the hub is reachable, a hub id.

    Returns {split name: ``datasets.Dataset``}. Raises ``CorpusError`` with the reason.
    """
    import datasets

    path = Path(dataset)
    if path.exists():
        if not path.is_dir():
            raise CorpusError(f"{path} is a file; give a directory written by Dataset.save_to_disk")
        try:
            obj = datasets.load_from_disk(str(path))
        except Exception as exc:  # FileNotFoundError or a datasets error on a foreign folder
            raise CorpusError(f"{path} is not a dataset saved with save_to_disk: {exc}") from None
    else:
        if hub_offline():
            raise CorpusError(
                f"{dataset!s} is not a local directory and the hub is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE "
                f"is set); on a connected machine run datasets.load_dataset(...).save_to_disk(DIR) and pass DIR"
            )
        try:
            obj = datasets.load_dataset(str(dataset), config, revision=revision)
        except Exception as exc:
            raise CorpusError(f"cannot load {dataset!s} from the hub: {exc}") from None
    if isinstance(obj, (datasets.DatasetDict, dict)):
        return dict(obj.items())
    split = str(obj.split) if getattr(obj, "split", None) is not None else "train"
    return {split: obj}


def _text_column(ds, name: str, text_column: str | None) -> str:
    columns = list(ds.column_names)
    if text_column is not None:
        if text_column not in columns:
            raise CorpusError(f"split {name!r} has no text column {text_column!r}; its columns are {columns}")
        return text_column
    for col in TEXT_COLUMNS:
        if col in columns:
            return col
    raise CorpusError(f"split {name!r} has no text column (looked for {', '.join(TEXT_COLUMNS)}); columns: {columns}")


def _undecoded(ds, name: str, audio_column: str):
    import datasets

    if audio_column not in ds.column_names:
        raise CorpusError(
            f"split {name!r} has no audio column {audio_column!r}; its columns are {list(ds.column_names)}"
        )
    feature = ds.features[audio_column]
    if not isinstance(feature, datasets.Audio) and not (
        isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")  # file paths
    ):
        raise CorpusError(f"split {name!r}: column {audio_column!r} is {feature!r}, not Audio or a path string")
    # every Audio column, not only the one read, would otherwise be decoded (with torchcodec) row by row
    for col, feat in ds.features.items():
        if isinstance(feat, datasets.Audio) and feat.decode:
            ds = ds.cast_column(col, datasets.Audio(sampling_rate=feat.sampling_rate, decode=False))
    return ds


def dataset_entries(
    splits: dict,
    *,
    audio_column: str,
    text_column: str | None,
    id_column: str | None,
    defaults: dict,
    skips: SkipReport,
    base: Path | None,
) -> Iterator[Entry]:
    for name, ds in splits.items():
        text_col = _text_column(ds, name, text_column)
        ds = _undecoded(ds, name, audio_column)
        split = normalize_split(name)
        for k, row in enumerate(ds):
            utt_id = str(row[id_column]) if id_column and row.get(id_column) not in (None, "") else f"{name}/{k:06d}"
            value = row[audio_column]
            fields = {**defaults, "split": split}
            fields.update({c: row[c] for c in CARRY_FIELDS if c in row and isinstance(row[c], str) and row[c]})
            if isinstance(value, dict) and value.get("bytes"):
                yield Entry(id=utt_id, text=row[text_col], audio_bytes=value["bytes"], fields=fields)
                continue
            path = value.get("path") if isinstance(value, dict) else value
            if not path:
                skips.skip(utt_id, "missing_audio", "neither bytes nor a path in the audio column")
                continue
            path = Path(path)
            if not path.is_absolute() and base is not None:
                path = base / path
            yield Entry(id=utt_id, text=row[text_col], audio=path, fields=fields)


def prepare(
    dataset: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: str | None = None,
    revision: str | None = None,
    splits: list[str] | None = None,
    audio_column: str = "audio",
    text_column: str | None = None,
    id_column: str | None = None,
    **options,
) -> Path:
    """Import a saved (or hub) dataset into ``out_dir``; returns ``out_dir/manifest.jsonl``.

    ``splits`` selects splits by their dataset names (default all). ``audio_column`` holds Audio or file
    paths; ``text_column`` defaults to the first of ``TEXT_COLUMNS`` present; ``id_column`` names utterances
    (default ``<split>/<row number>``). Columns domain/split/speaker/source/voice are carried over, else
    ``domain``, ``source``, ``speaker`` fill them (``options``: ``ImportOptions`` without ``split`` and
    ``resample``). Every utterance is written as 16 kHz mono wav.
    """
    opts = ImportOptions.of(CORPUS, options, without=("split", "resample"))
    all_splits = load(dataset, config=config, revision=revision)
    if splits:
        missing = [s for s in splits if s not in all_splits]
        if missing:
            raise CorpusError(f"{dataset!s} has no split {missing}; it has {sorted(all_splits)}")
        all_splits = {s: all_splits[s] for s in splits}
    skips = SkipReport()
    defaults = opts.defaults(split=False)
    base = Path(dataset) if Path(dataset).is_dir() else None
    # check the columns of every split before anything is written
    for name, ds in all_splits.items():
        _text_column(ds, name, text_column)
        _undecoded(ds, name, audio_column)
    entries = dataset_entries(all_splits, audio_column=audio_column, text_column=text_column, id_column=id_column,
                              defaults=defaults, skips=skips, base=base)
    options = {"dataset": str(Path(dataset).resolve()) if base else str(dataset), "config": config,
               "revision": revision, "splits": splits, "audio_column": audio_column, "text_column": text_column,
               "id_column": id_column, **defaults}
    total = sum(len(ds) for ds in all_splits.values())
    return opts.write(entries, out_dir, corpus=CORPUS, options=options, skips=skips, total=total, resample=True)
