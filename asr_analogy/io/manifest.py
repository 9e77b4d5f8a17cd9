"""JSONL manifests: one utterance per line.

Fields (NeMo-style, extended):

| field          | type   | meaning                                                              |
|----------------|--------|----------------------------------------------------------------------|
| audio_filepath | str    | path to the audio, absolute or relative to the manifest's directory  |
| text           | str    | reference transcript                                                 |
| duration       | float  | seconds                                                              |
| domain         | str    | optional: domain label (e.g. "voicemail")                            |
| speaker        | str    | optional                                                             |
| split          | str    | optional: train / dev / test                                         |
| source         | str    | optional: "real" or "synthetic"                                      |
| voice          | str    | optional: TTS voice for synthetic audio                              |

Other fields are kept as they are. ``read_manifest`` resolves ``audio_filepath`` to an absolute path;
``write_manifest`` writes paths relative to the manifest's directory when the audio lies under it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from asr_analogy.errors import ManifestError
from asr_analogy.io.atomic import atomic_file

REQUIRED_FIELDS = ("audio_filepath", "text")
SOURCES = ("real", "synthetic")


def read_manifest(path: str | os.PathLike, resolve_paths: bool = True) -> list[dict]:
    """Read a JSONL manifest into a list of dicts; ``audio_filepath`` made absolute when ``resolve_paths``.

    Raises ``ManifestError`` naming the file and line for invalid JSON, a missing required field, a
    non-numeric duration or an unknown ``source``. Blank lines are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise ManifestError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            for key in REQUIRED_FIELDS:
                if key not in rec:
                    raise ManifestError(f"{path}:{lineno}: missing required field '{key}'")
            if not isinstance(rec["text"], str):
                raise ManifestError(f"{path}:{lineno}: field 'text' must be a string")
            if "duration" in rec and rec["duration"] is not None:
                try:
                    rec["duration"] = float(rec["duration"])
                except (TypeError, ValueError):
                    raise ManifestError(f"{path}:{lineno}: field 'duration' must be a number of seconds") from None
            if rec.get("source") is not None and rec["source"] not in SOURCES:
                raise ManifestError(f"{path}:{lineno}: field 'source' must be one of {SOURCES}, got {rec['source']!r}")
            if resolve_paths:
                audio = Path(rec["audio_filepath"])
                if not audio.is_absolute():
                    audio = (path.parent / audio).resolve()
                rec["audio_filepath"] = str(audio)
            records.append(rec)
    return records


def write_manifest(records: Iterable[dict], path: str | os.PathLike, relative: bool = True) -> Path:
    """Write records as JSONL atomically. Returns the path.

    With ``relative``, an ``audio_filepath`` under the manifest's directory is written relative to it, so the
    directory can be moved as a whole.
    """
    path = Path(path)
    base = path.parent.resolve()
    with atomic_file(path) as fh:
        for rec in records:
            rec = dict(rec)
            if relative and "audio_filepath" in rec:
                audio = Path(rec["audio_filepath"])
                if audio.is_absolute():
                    try:
                        rec["audio_filepath"] = str(audio.resolve().relative_to(base))
                    except ValueError:
                        pass
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def filter_records(records: Iterable[dict], **criteria) -> list[dict]:
    """Keep records whose fields equal the given values; a list/tuple/set value means "any of these".

    ``filter_records(recs, split="train", domain=["voicemail", "conference"])``.
    """
    out = []
    for rec in records:
        ok = True
        for key, want in criteria.items():
            if want is None:
                continue
            have = rec.get(key)
            if isinstance(want, (list, tuple, set, frozenset)):
                ok = have in want
            else:
                ok = have == want
            if not ok:
                break
        if ok:
            out.append(rec)
    return out
