"""NeMo manifests and Lhotse manifests (JSONL, optionally gzipped).

Recognized, line by line:

| input                          | a line looks like                                                                 |
|--------------------------------|-----------------------------------------------------------------------------------|
| NeMo manifest                  | {"audio_filepath", "text", "duration"?, "offset"?, ...}                            |
| Lhotse cuts (MonoCut)          | {"id", "start", "duration", "channel", "supervisions": [{"text", "speaker", ...}], |
|                                |  "recording": {"id", "sources": [{"type": "file", "source": path, "channels"}],   |
|                                |  "sampling_rate", "duration"}, "type": "MonoCut"}                                 |
| Lhotse recordings + supervisions | recordings {"id", "sources", "sampling_rate", "duration"} with ``supervisions``  |
|                                | given separately: {"id", "recording_id", "start", "duration", "text", ...}        |

A cut's text is its supervisions' texts joined by spaces (in start order); its speaker the first supervision's.
A cut or supervision that covers part of a recording (or a NeMo line with ``offset``) is cut out and written
as 16 kHz mono wav under ``OUT_DIR/audio``. Only ``file`` sources are read; ``url``, ``command``, ``memory`` and
``shar`` sources, and cuts other than MonoCut, are skipped (``unsupported``). The channel selection of a cut is
not applied: multi-channel audio is down-mixed. Fields domain/split/speaker/source/voice come from the line
or its ``custom`` dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from asr_analogy.io.manifest import read_jsonl
from asr_analogy.io.skips import SkipReport
from data_prep._common import CARRY_FIELDS, CorpusError, Entry, resolve_audio_path
from data_prep._options import ImportOptions

CORPUS = "nemo"


def read_lines(path: str | os.PathLike) -> list[dict]:
    """JSON objects of a .jsonl or .jsonl.gz file (``asr_analogy.io.manifest.read_jsonl``); raises ``CorpusError``
    naming the file and line, or when it holds no line."""
    rows = read_jsonl(path, error=CorpusError)
    if not rows:
        raise CorpusError(f"manifest {path} holds no lines")
    return rows


def detect_format(row: dict, path: Path) -> str:
    """``nemo``, ``lhotse_cut``, ``lhotse_recording`` or ``lhotse_supervision`` from the keys of a line."""
    if "audio_filepath" in row:
        return "nemo"
    if "recording" in row or "supervisions" in row or str(row.get("type", "")).endswith("Cut"):
        return "lhotse_cut"
    if "sources" in row:
        return "lhotse_recording"
    if "recording_id" in row:
        return "lhotse_supervision"
    raise CorpusError(
        f"{path}: the first line is neither a NeMo manifest line (audio_filepath) nor a Lhotse cut, recording or "
        f"supervision; its keys are {sorted(row)}"
    )


def _carry(*dicts: dict | None) -> dict:
    out = {}
    for d in dicts:
        if not d:
            continue
        for key in CARRY_FIELDS:
            if d.get(key) not in (None, ""):
                out[key] = d[key]
        custom = d.get("custom") or {}
        if isinstance(custom, dict):
            for key in CARRY_FIELDS:
                if custom.get(key) not in (None, ""):
                    out[key] = custom[key]
    return out


def _file_source(recording: dict, base: Path) -> tuple[Path | None, str]:
    """The audio file of a Lhotse recording, or (None, why not)."""
    sources = recording.get("sources") or []
    if not sources:
        return None, "recording has no sources"
    src = sources[0]
    if src.get("type", "file") != "file":
        return None, f"source type {src.get('type')!r} is not read (only 'file')"
    return resolve_audio_path(str(src.get("source", "")), base), ""


def nemo_entries(rows: list[dict], base: Path, defaults: dict, skips: SkipReport) -> Iterator[Entry]:
    for k, row in enumerate(rows):
        utt_id = str(row.get("id") or row.get("utt_id") or row.get("audio_filepath") or f"line{k + 1}")
        offset = float(row.get("offset") or 0.0)
        duration = row.get("duration")
        audio = resolve_audio_path(str(row["audio_filepath"]), base) if row.get("audio_filepath") else None
        yield Entry(id=utt_id if not offset else f"{utt_id}@{offset:.3f}", text=row.get("text"), audio=audio,
                    offset=offset, duration=float(duration) if duration is not None else None,
                    fields={**defaults, **_carry(row)})


def cut_entries(rows: list[dict], base: Path, defaults: dict, skips: SkipReport) -> Iterator[Entry]:
    for k, cut in enumerate(rows):
        cut_id = str(cut.get("id") or f"cut{k + 1}")
        kind = cut.get("type", "MonoCut")
        if kind != "MonoCut" or "recording" not in cut:
            skips.skip(cut_id, "unsupported", f"{kind} without a single recording is not read")
            continue
        audio, why = _file_source(cut["recording"], base)
        if audio is None:
            skips.skip(cut_id, "unsupported", why)
            continue
        sups = sorted(cut.get("supervisions") or [], key=lambda s: float(s.get("start", 0.0)))
        text = " ".join(str(s.get("text") or "").strip() for s in sups).strip()
        fields = {**defaults, **_carry(cut, *(sups[:1]))}
        if sups and sups[0].get("speaker"):
            fields["speaker"] = sups[0]["speaker"]
        start = float(cut.get("start", 0.0))
        duration = cut.get("duration")
        yield Entry(id=cut_id, text=text, audio=audio, offset=start,
                    duration=float(duration) if duration is not None else None, fields=fields)


def supervision_entries(recordings: list[dict], supervisions: list[dict], base: Path, defaults: dict,
                        skips: SkipReport) -> Iterator[Entry]:
    by_id = {str(r.get("id")): r for r in recordings}
    for k, sup in enumerate(supervisions):
        sup_id = str(sup.get("id") or f"supervision{k + 1}")
        rec = by_id.get(str(sup.get("recording_id")))
        if rec is None:
            skips.skip(sup_id, "missing_audio", f"no recording {sup.get('recording_id')!r} in the recordings manifest")
            continue
        audio, why = _file_source(rec, base)
        if audio is None:
            skips.skip(sup_id, "unsupported", why)
            continue
        fields = {**defaults, **_carry(rec, sup)}
        if sup.get("speaker"):
            fields["speaker"] = sup["speaker"]
        duration = sup.get("duration")
        yield Entry(id=sup_id, text=sup.get("text"), audio=audio, offset=float(sup.get("start", 0.0)),
                    duration=float(duration) if duration is not None else None, fields=fields)


def prepare(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    supervisions: str | os.PathLike | None = None,
    audio_root: str | os.PathLike | None = None,
    **options,
) -> Path:
    """Import a NeMo manifest, Lhotse cuts, or Lhotse recordings + ``supervisions`` into ``out_dir``.

    Returns ``out_dir/manifest.jsonl``. Relative audio paths are resolved against ``audio_root`` (default: the
    manifest's folder). ``options``: ``ImportOptions`` (``domain``, ``split``, ``source``, ``speaker`` fill fields
    the input does not give; ``resample`` writes every utterance as 16 kHz mono wav, otherwise whole files are
    referenced in place; ``force``, ``echo``).
    """
    opts = ImportOptions.of(CORPUS, options)
    manifest = Path(manifest)
    rows = read_lines(manifest)
    kind = detect_format(rows[0], manifest)
    base = Path(audio_root) if audio_root is not None else manifest.parent
    skips = SkipReport()
    defaults = opts.defaults()
    if kind == "nemo":
        entries = nemo_entries(rows, base, defaults, skips)
    elif kind == "lhotse_cut":
        entries = cut_entries(rows, base, defaults, skips)
    elif kind == "lhotse_recording":
        if supervisions is None:
            raise CorpusError(f"{manifest} is a Lhotse recordings manifest; give its supervisions manifest too")
        entries = supervision_entries(rows, read_lines(supervisions), base, defaults, skips)
    else:
        raise CorpusError(f"{manifest} is a Lhotse supervisions manifest; give the recordings manifest first and "
                          f"this one as supervisions")
    options = {"manifest": str(manifest.resolve()), "format": kind,
               "supervisions": str(Path(supervisions).resolve()) if supervisions else None,
               "audio_root": str(audio_root) if audio_root else None, **defaults, "resample": opts.resample}
    return opts.write(entries, out_dir, corpus=CORPUS, options=options, skips=skips)
