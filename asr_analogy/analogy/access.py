"""Data access with a leakage guard: the method never sees the target domain's real audio.

Every stage of the recipe gets its utterances from a ``DataAccess`` object, naming who reads them
(``consumer``, e.g. ``"finetune/A"``) and why (``purpose``: ``"train"`` or ``"decode"``). Before records leave
it, the guard checks them: a record with ``source == "real"`` and a *protected* domain (the targets) may be
handed only to the consumers of ``TARGET_REAL_ALLOWED``:

| consumer prefix            | why it may read target real audio                                        |
|----------------------------|--------------------------------------------------------------------------|
| ``evaluate``               | scoring every system on target real test (that is the point)              |
| ``select_lambda/oracle``   | the oracle λ, reported and labelled as such, never the default            |
| ``finetune/upper_bound``   | the reference system trained on target real audio (reported, not used)   |

Anything else raises ``LeakageError``. Each hand-out is appended to ``access_log.jsonl`` (stage, consumer,
purpose, file, domains, sources, splits, count, whether target real audio was in it) so that a run can be
audited afterwards (``audit_access_log``). Text-only hand-outs (``texts``) carry no audio and are not
restricted, except that a target's *test* text is never handed to anything but evaluation.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

from asr_analogy.errors import AsrAnalogyError
from asr_analogy.io.manifest import read_manifest

TARGET_REAL_ALLOWED = ("evaluate", "select_lambda/oracle", "finetune/upper_bound")
"""Consumer prefixes that may receive target-domain real audio (see the module docstring)."""

TEST_TEXT_ALLOWED = ("evaluate",)


class LeakageError(AsrAnalogyError):
    """A stage asked for target-domain real audio (or target test text) that the method must not see."""


def _allowed(consumer: str, prefixes: Iterable[str]) -> bool:
    return any(consumer == p or consumer.startswith(p + "/") or consumer.startswith(p + "[") for p in prefixes)


class DataAccess:
    """Hands out utterance records of the recipe's manifests and logs every hand-out.

    ``protected``: domains whose real audio is guarded (the targets). ``log_path``: the JSONL access log.
    ``stage``: the stage currently running (set by the runner through ``for_stage``).
    """

    def __init__(self, protected: Iterable[str], log_path: str | os.PathLike, stage: str = "-"):
        self.protected = frozenset(protected)
        self.log_path = Path(log_path)
        self.stage = stage
        self._cache: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    def for_stage(self, stage: str) -> "DataAccess":
        """The same guard and log, recording ``stage`` as the reader."""
        other = DataAccess(self.protected, self.log_path, stage)
        other._cache = self._cache
        return other

    # -- reading -------------------------------------------------------------------------------------------
    def _read(self, manifest: str | os.PathLike) -> list[dict]:
        key = str(Path(manifest).resolve())
        if key not in self._cache:
            self._cache[key] = read_manifest(manifest)
        return self._cache[key]

    def records(
        self,
        manifest: str | os.PathLike,
        *,
        consumer: str,
        purpose: str,
        domains: Iterable[str] | None = None,
        splits: Iterable[str] | None = None,
        voices: Iterable[str] | None = None,
        log: bool = True,
    ) -> list[dict]:
        """Records of ``manifest`` whose domain / split / voice are among those given (None: any).

        Raises ``LeakageError`` when the selection holds target real audio and ``consumer`` may not have it.
        ``log=False`` checks without logging (a look at what a job would get, before deciding to run it).
        """
        recs = self._read(manifest)
        dset = None if domains is None else set(domains)
        sset = None if splits is None else set(splits)
        vset = None if voices is None else set(voices)
        out = [
            dict(r)
            for r in recs
            if (dset is None or r.get("domain") in dset)
            and (sset is None or r.get("split") in sset)
            and (vset is None or r.get("voice") in vset)
        ]
        self._check_and_log(out, manifest, consumer=consumer, purpose=purpose, log=log)
        return out

    def texts(self, manifest: str | os.PathLike, *, consumer: str, splits: Iterable[str]) -> list[dict]:
        """Text-only records (no audio path) of the given splits, for synthesis.

        A protected domain's test split is refused: its text is evaluation material.
        """
        splits = list(splits)
        if "test" in splits and not _allowed(consumer, TEST_TEXT_ALLOWED):
            raise LeakageError(f"{consumer} asked for test-split text; only evaluation may read it")
        recs = self._read(manifest)
        out = []
        for r in recs:
            if r.get("split") not in splits:
                continue
            out.append({k: v for k, v in r.items() if k not in ("audio_filepath", "duration")})
        self.log(
            {
                "consumer": consumer,
                "purpose": "text",
                "file": str(manifest),
                "n": len(out),
                "domains": sorted(Counter(r.get("domain") for r in out)),
                "splits": sorted(set(splits)),
                "sources": sorted({str(r.get("source")) for r in out}),
                "target_real_audio": False,
            }
        )
        return out

    # -- guard and log -------------------------------------------------------------------------------------
    def _check_and_log(self, records: list[dict], file, *, consumer: str, purpose: str, log: bool = True) -> None:
        target_real = [r for r in records if r.get("source", "real") == "real" and r.get("domain") in self.protected]
        entry = {
            "consumer": consumer,
            "purpose": purpose,
            "file": str(file),
            "n": len(records),
            "domains": sorted({str(r.get("domain")) for r in records}),
            "splits": sorted({str(r.get("split")) for r in records}),
            "sources": sorted({str(r.get("source", "real")) for r in records}),
            "target_real_audio": bool(target_real),
        }
        if target_real and not _allowed(consumer, TARGET_REAL_ALLOWED):
            entry["refused"] = True
            self.log(entry)  # refusals are always logged
            doms = sorted({r.get("domain") for r in target_real})
            raise LeakageError(
                f"stage '{self.stage}' ({consumer}) asked for {len(target_real)} real utterances of target "
                f"domain(s) {doms}; target real audio is read only by {', '.join(TARGET_REAL_ALLOWED)}"
            )
        if log:
            self.log(entry)

    def log(self, entry: dict) -> None:
        """Append ``entry`` (with the time and the reading stage) to the access log."""
        entry = {"time": round(time.time(), 3), "stage": self.stage, **entry}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()


def read_access_log(path: str | os.PathLike) -> list[dict]:
    """The entries of an access log (a missing log is empty)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return out


def audit_access_log(path: str | os.PathLike) -> list[dict]:
    """Entries where target real audio was handed to a consumer outside ``TARGET_REAL_ALLOWED`` (should be
    empty; refused requests are not hand-outs)."""
    return [
        e
        for e in read_access_log(path)
        if e.get("target_real_audio") and not e.get("refused") and not _allowed(e.get("consumer", ""), TARGET_REAL_ALLOWED)
    ]
