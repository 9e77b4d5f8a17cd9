"""The output JSONL of ``transcribe`` while it runs: records appended batch by batch, read back to resume.

Each batch's records are appended as whole lines, flushed and synced, so a killed run leaves every finished
batch on disk, at worst followed by one torn line (a write cut short). ``read_finished`` reads the complete
lines back and cuts a torn last line off the file; ``match_finished`` pairs them with the manifest's records
by ``utterance_key`` (``id``, else the audio file's resolved path), so a rerun decodes only the rest.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from asr_analogy.errors import ManifestError


def utterance_key(rec: dict, base: Path | None = None) -> str:
    """``id`` when the record has one, else its audio path resolved (relative paths against ``base``)."""
    if rec.get("id") not in (None, ""):
        return f"id:{rec['id']}"
    audio = Path(rec["audio_filepath"])
    if base is not None and not audio.is_absolute():
        audio = base / audio
    return f"path:{audio.resolve()}"


def read_finished(path: str | os.PathLike) -> list[dict]:
    """The records of the complete lines of ``path`` (none when it does not exist). A last line without its
    newline (a write cut short by a kill) is cut off the file, never kept; any other bad line is a
    ``ManifestError`` naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(len(complete))
    records = []
    for lineno, line in enumerate(complete.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}:{lineno}: not a transcript record ({exc}); pass --force to start over"
                                ) from None
        if not isinstance(rec, dict) or "audio_filepath" not in rec or "hypothesis" not in rec:
            raise ManifestError(f"{path}:{lineno}: not a transcript record (needs audio_filepath and hypothesis)")
        records.append(rec)
    return records


def match_finished(records: list[dict], finished: list[dict], path: str | os.PathLike) -> dict[int, dict]:
    """Index in ``records`` → its finished record (the n-th occurrence of a key matches the n-th one written).

    Raises ``ManifestError`` when ``finished`` holds a record the manifest does not have: the file belongs
    to another manifest and would be lost by the rewrite.
    """
    base = Path(path).absolute().parent
    pending = defaultdict(list)
    for rec in reversed(finished):
        pending[utterance_key(rec, base)].append(rec)
    matched = {}
    for i, rec in enumerate(records):
        queue = pending.get(utterance_key(rec))
        if queue:
            matched[i] = queue.pop()
    extra = [recs[-1] for recs in pending.values() if recs]
    if extra:
        first = extra[0].get("id") or extra[0]["audio_filepath"]
        raise ManifestError(f"{path} holds {sum(map(len, pending.values()))} record(s) the manifest does not have "
                            f"(first: {first}); it is the output of another manifest: pass --force to replace it")
    return matched


class TranscriptAppender:
    """Appends records to a JSONL file, one batch at a time, each batch flushed and synced to disk.

    ``fresh`` starts the file empty; otherwise records go after its existing lines.
    """

    def __init__(self, path: str | os.PathLike, fresh: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "w" if fresh else "a", encoding="utf-8")

    def append(self, records: list[dict]) -> None:
        if records:
            self.fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()
