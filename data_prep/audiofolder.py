"""An "audiofolder" (the Hugging Face layout): audio files plus ``metadata.csv`` or ``metadata.jsonl``.

The metadata names each file in a ``file_name`` column (relative to the metadata's folder) and its transcript
in ``transcription``, ``text``, ``sentence`` or ``transcript`` (or ``text_column``). The metadata sits in the
folder itself, or in split subfolders (``train/``, ``validation/`` or ``dev/``, ``test/``), each with its own
metadata; the subfolder names the split. Columns ``domain``, ``split``, ``speaker``, ``source`` and ``voice`` are
carried over when present.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr_analogy.io.manifest import read_jsonl
from asr_analogy.io.skips import SkipReport
from data_prep._common import CARRY_FIELDS, CorpusError, Entry, normalize_split, resolve_audio_path
from data_prep._options import ImportOptions
from data_prep.tabular import read_table, strict_rows

CORPUS = "audiofolder"
TEXT_COLUMNS = ("transcription", "text", "sentence", "transcript")
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")


def _metadata_rows(path: Path, skips: SkipReport) -> list[dict]:
    if path.suffix == ".jsonl":
        rows = read_jsonl(path, error=CorpusError, what="metadata")
        if not rows:
            raise CorpusError(f"{path} holds no rows")
        return rows
    table, _ = read_table(path, delimiter=",")
    header = table[0].cells
    return [dict(zip(header, row.cells)) for row in strict_rows(table[1:], len(header), path, skips)]


def find_metadata(folder: Path) -> list[tuple[Path, str | None]]:
    """[(metadata file, split or None)]: the folder's own metadata, else one per split subfolder."""
    for name in METADATA_NAMES:
        if (folder / name).is_file():
            return [(folder / name, None)]
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for name in METADATA_NAMES:
            if (sub / name).is_file():
                found.append((sub / name, normalize_split(sub.name)))
                break
    if not found:
        raise CorpusError(
            f"no metadata.csv or metadata.jsonl in {folder} or in its split subfolders (train/, validation/, test/)"
        )
    return found


def folder_entries(folder: Path, *, text_column: str | None, defaults: dict, skips: SkipReport) -> list[Entry]:
    entries = []
    for meta, split in find_metadata(folder):
        rows = _metadata_rows(meta, skips)
        columns = list(rows[0].keys())
        if "file_name" not in columns:
            raise CorpusError(f"{meta}: no 'file_name' column; the columns are {columns}")
        if text_column is not None:
            if text_column not in columns:
                raise CorpusError(f"{meta}: no text column {text_column!r}; the columns are {columns}")
            text_col = text_column
        else:
            text_col = next((c for c in TEXT_COLUMNS if c in columns), None)
            if text_col is None:
                raise CorpusError(
                    f"{meta}: no text column (looked for {', '.join(TEXT_COLUMNS)}); the columns are {columns}"
                )
        for k, row in enumerate(rows):
            name = str(row.get("file_name") or "").strip()
            if not name:
                skips.skip(f"{meta.name}:{k + 1}", "missing_audio", "empty file_name")
                continue
            fields = dict(defaults)
            if split is not None:
                fields["split"] = split
            fields.update({c: row[c] for c in CARRY_FIELDS if row.get(c) not in (None, "")})
            rel = meta.parent.relative_to(folder) / name
            entries.append(Entry(id=rel.as_posix(), text=row.get(text_col), audio=resolve_audio_path(name, meta.parent),
                                 fields=fields))
    return entries


def prepare(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    text_column: str | None = None,
    **options,
) -> Path:
    """Import an audiofolder into ``out_dir``; returns ``out_dir/manifest.jsonl``.

    ``options``: ``ImportOptions`` (``domain``, ``split``, ``source``, ``speaker`` fill fields not given by the
    metadata, a split subfolder overriding ``split``; ``force``, ``echo``). ``resample`` writes 16 kHz mono wavs under ``out_dir/audio``; otherwise the manifest
    points to the original files. Bad rows are skipped into ``skipped.jsonl``; a missing metadata file or
    column, or no usable row, is an error and writes nothing.
    """
    opts = ImportOptions.of(CORPUS, options)
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"audiofolder {folder} is not a directory")
    skips = SkipReport()
    defaults = opts.defaults()
    entries = folder_entries(folder, text_column=text_column, defaults=defaults, skips=skips)
    options = {"folder": str(folder.resolve()), "text_column": text_column, **defaults, "resample": opts.resample}
    return opts.write(entries, out_dir, corpus=CORPUS, options=options, skips=skips, total=len(entries))
