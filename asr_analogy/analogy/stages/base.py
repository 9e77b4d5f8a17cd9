"""The stage interface (``Stage``) and a resumable runner: each stage leaves an atomic completion marker and is
skipped when complete.

A stage is *complete* when ``<out_dir>/stages/<name>.done.json`` exists and records the stage's current
fingerprint. A stage's fingerprint hashes the config sections it depends on together with the fingerprints of
the stages before it, so editing (say) the fine-tuning section reruns fine-tuning and everything after it, and
nothing before it. ``from_stage`` reruns a stage and those after it even when complete; ``stop_stage`` stops
after the named stage. A run holds an exclusive lock on ``<out_dir>/.lock`` (released by the OS when the
process dies, so a killed run never blocks the next one).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from asr_analogy.errors import AsrAnalogyError, ConfigError
from asr_analogy.io.atomic import atomic_file


class StageError(AsrAnalogyError):
    """A stage cannot run: an earlier stage is incomplete, or the run directory is locked by another run."""


@dataclass(frozen=True)
class Stage:
    """One step of a recipe: a name, what it reads and writes, and two functions of the recipe context.

    ``run(context)`` does the work (idempotent: it may find its own partial outputs from a killed run and
    continue) and returns a JSON-able summary stored in the marker. ``inputs``: the config sections whose values
    enter the fingerprint. ``outputs``: what it writes under the run directory (documentation).
    ``describe(context)`` returns lines for the dry-run plan; ``doc`` is its one-line title.
    """

    name: str
    run: Callable[[Any], dict | None]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    describe: Callable[[Any], list[str]] = field(default=lambda context: [])
    doc: str = ""

    def fingerprint(self, section_hash: Callable[..., str], previous: str = "") -> str:
        """16 hex digits over the previous stage's fingerprint, the name and the hash of the input sections."""
        blob = f"{previous}|{self.name}|{section_hash(*self.inputs) if self.inputs else ''}"
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def marker_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / "stages" / f"{name}.done.json"


def read_marker(out_dir: str | os.PathLike, name: str) -> dict | None:
    """The completion marker ``<out_dir>/stages/<name>.done.json`` of a stage, or None."""
    path = marker_path(out_dir, name)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class StageRunner:
    """Runs ``stages`` in order under ``out_dir``, passing each ``context``; ``section_hash(*names) -> str``
    fingerprints config sections."""

    def __init__(self, out_dir: str | os.PathLike, stages: Sequence[Stage], section_hash: Callable[..., str],
                 context: Any = None):
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in {names}")
        self.out_dir = Path(out_dir)
        self.stages = list(stages)
        self.context = context
        self._fingerprints: dict[str, str] = {}
        previous = ""
        for s in self.stages:
            previous = self._fingerprints[s.name] = s.fingerprint(section_hash, previous)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def marker_path(self, name: str) -> Path:
        return marker_path(self.out_dir, name)

    def is_complete(self, name: str) -> bool:
        """True when the stage's marker exists and matches its current fingerprint."""
        path = self.marker_path(name)
        if not path.is_file():
            return False
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return marker.get("fingerprint") == self._fingerprints[name]

    def _index(self, name: str | None, what: str) -> int | None:
        if name is None:
            return None
        if name not in self.names:
            raise ConfigError(f"{what} '{name}' is not a stage; stages are: {', '.join(self.names)}")
        return self.names.index(name)

    def plan(self, from_stage: str | None = None, stop_stage: str | None = None) -> list[tuple[Stage, str]]:
        """``(stage, action)`` for every stage; action is ``run``, ``skip (complete)`` or ``not run (...)``."""
        first = self._index(from_stage, "--from-stage")
        last = self._index(stop_stage, "--stop-stage")
        if first is not None and last is not None and last < first:
            raise ConfigError(f"--stop-stage {stop_stage} comes before --from-stage {from_stage}")
        out = []
        for i, s in enumerate(self.stages):
            if last is not None and i > last:
                out.append((s, "not run (after --stop-stage)"))
            elif first is not None and i >= first:
                out.append((s, "run"))
            elif self.is_complete(s.name):
                out.append((s, "skip (complete)"))
            elif first is not None:
                out.append((s, "missing (before --from-stage)"))
            else:
                out.append((s, "run"))
        return out

    def check(self, from_stage: str | None = None, stop_stage: str | None = None) -> list[tuple[Stage, str]]:
        """``plan()``, raising ``StageError`` when ``from_stage`` skips stages that are not complete."""
        planned = self.plan(from_stage, stop_stage)
        missing = [s.name for s, a in planned if a.startswith("missing")]
        if missing:
            raise StageError(
                f"cannot start at --from-stage {from_stage}: earlier stage(s) {', '.join(missing)} are not complete "
                f"for this config; run them first (omit --from-stage)"
            )
        return planned

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.out_dir / ".lock", "a+")
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StageError(f"{self.out_dir} is in use by another run (lock {self.out_dir / '.lock'})") from None
            yield
        finally:
            fh.close()

    def run(
        self,
        from_stage: str | None = None,
        stop_stage: str | None = None,
        echo: Callable[[str], None] = print,
    ) -> list[tuple[str, str]]:
        """Run the planned stages; returns ``(name, what happened)`` per stage."""
        planned = self.check(from_stage, stop_stage)
        done = []
        with self._lock():
            for s, action in planned:
                if action != "run":
                    done.append((s.name, action))
                    if action.startswith("skip"):
                        echo(f"[{s.name}] complete, skipped")
                    continue
                # a rerun is not complete until it finishes again, and what came after it is stale
                for later in self.names[self.names.index(s.name):]:
                    with contextlib.suppress(FileNotFoundError):
                        self.marker_path(later).unlink()
                echo(f"[{s.name}] running")
                t0 = time.time()
                summary = s.run(self.context) or {}
                elapsed = time.time() - t0
                with atomic_file(self.marker_path(s.name)) as fh:
                    json.dump(
                        {
                            "stage": s.name,
                            "fingerprint": self._fingerprints[s.name],
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "elapsed_s": round(elapsed, 2),
                            "summary": summary,
                        },
                        fh,
                        indent=1,
                        sort_keys=True,
                    )
                echo(f"[{s.name}] done in {elapsed:.1f} s")
                done.append((s.name, f"ran in {elapsed:.1f} s"))
        return done
