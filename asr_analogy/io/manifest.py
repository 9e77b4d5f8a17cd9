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

import gzip
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from asr_analogy.errors import ManifestError
from asr_analogy.io.atomic import atomic_file

REQUIRED_FIELDS = ("audio_filepath", "text")
SOURCES = ("real", "synthetic")


def read_jsonl(path: str | os.PathLike, *, error: type[ManifestError] = ManifestError,
               what: str = "manifest") -> list[dict]:
    """The JSON objects of a ``.jsonl`` (or gzipped ``.jsonl.gz``) file, one a line; blank lines are ignored.

    Raises ``error`` (a ``ManifestError``) with one line naming the file, and the line where there is one, when
    the file is missing or unreadable, a line is not UTF-8, not valid JSON, or not a JSON object. An empty file
    gives an empty list.
    """
    return [row for _, row in iter_jsonl(path, error=error, what=what)]


def iter_jsonl(path: str | os.PathLike, *, error: type[ManifestError] = ManifestError,
               what: str = "manifest") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; errors as in ``read_jsonl``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
                except UnicodeDecodeError as exc:
                    raise error(f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                                f"{exc.start + 1})") from None
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise error(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
    except (OSError, EOFError) as exc:  # unreadable, or a corrupt / truncated .gz
        raise error(f"cannot read {what} {path}: {exc}") from None


def read_manifest(path: str | os.PathLike, resolve_paths: bool = True) -> list[dict]:
    """Read a JSONL manifest into a list of dicts; ``audio_filepath`` made absolute when ``resolve_paths``.

    Raises ``ManifestError`` naming the file and line for a line that is not UTF-8 or not a JSON object, a
    missing required field, a non-numeric duration or an unknown ``source``. Blank lines are ignored.
    """
    path = Path(path)
    records = []
    for lineno, rec in iter_jsonl(path):
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
