"""The skip report: utterances dropped while preparing a corpus or loading a manifest, each with a reason code.

One entry per dropped item, in ``skipped``: ``{"id", "reason", "detail"}`` for a corpus entry (``skip``), or
``{"index", "audio_filepath", "reason", "detail"}`` for a manifest record (``add``). Written as JSONL (one entry
a line, ``write_jsonl``) or as one JSON summary with counts (``write_json``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from asr_analogy.io.atomic import atomic_file


@dataclass
class SkipReport:
    """Which items were dropped, and why; optionally how many were read and kept."""

    source: str = ""  # what was read: a manifest path, "<records>", or a corpus name
    n_total: int = 0  # items read (0 when not counted)
    n_kept: int = 0  # items kept
    kept_seconds: float = 0.0  # total duration of the kept audio, seconds
    skipped: list[dict] = field(default_factory=list)

    def skip(self, utt_id: str, reason: str, detail: str = "") -> None:
        """Drop corpus entry ``utt_id`` for ``reason`` (a short code such as ``missing_audio``)."""
        self.skipped.append({"id": str(utt_id), "reason": reason, "detail": detail})

    def add(self, index: int, audio_filepath: str, reason: str, detail: str = "") -> None:
        """Drop the manifest record at 0-based ``index`` (with its audio path) for ``reason``."""
        self.skipped.append({"index": index, "audio_filepath": audio_filepath, "reason": reason, "detail": detail})

    @property
    def counts(self) -> dict[str, int]:
        """Number of dropped items per reason, e.g. ``{"silent": 2}``."""
        return dict(Counter(s["reason"] for s in self.skipped))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        """One line: ``kept 10 of 13 utterances (41.2 s); skipped 3: 2 silent, 1 missing`` (the ``kept`` part
        only when items were counted; ``skipped: none`` when nothing was dropped and nothing counted)."""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        skipped = f"skipped {len(self.skipped)}: {parts}" if self.skipped else ""
        if not self.n_total:
            return skipped or "skipped: none"
        kept = f"kept {self.n_kept} of {self.n_total} utterances ({self.kept_seconds:.1f} s)"
        return f"{kept}; {skipped}" if skipped else kept

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "n_total": self.n_total,
            "n_kept": self.n_kept,
            "n_skipped": len(self.skipped),
            "kept_seconds": round(self.kept_seconds, 3),
            "counts": self.counts,
            "skipped": self.skipped,
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report (counts and entries) as one JSON object, atomically. Returns the path."""
        path = Path(path)
        with atomic_file(path) as fh:
            json.dump(self.to_dict(), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        return path

    def write_jsonl(self, path: str | os.PathLike) -> Path:
        """Write one entry per line, atomically. Returns the path."""
        path = Path(path)
        with atomic_file(path) as fh:
            for entry in self.skipped:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return path
