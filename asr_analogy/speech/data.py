"""JSONL manifests → a torch ``Dataset`` that decodes each clip when it is read, plus a skip report and a
length-grouped sampler. Memory does not grow with the corpus: only the manifest's metadata (packed in one
bytes buffer) is held, and audio is decoded per item (soundfile + librosa, ``asr_analogy.io.audio``) in the
data-loader workers.

Utterances that cannot train a model are skipped, never raised. Loading checks what needs no decoding: an empty
transcript, a missing or 0-byte file, and the duration against the limits (the manifest's ``duration``; the file
header where the manifest has none, which also finds undecodable files and files with no samples). What needs
the samples (silence, a corrupt body, a decoded length out of the limits) is found when the clip is first read:
that item is then replaced by the next usable one of the manifest, and the skip is recorded (in the process,
and in ``skip_log`` for worker processes). ``ManifestAudioDataset.final_report()`` merges both. Only when *every*
utterance is skipped does loading (or reading) fail, with a ``ManifestError`` that gives the counts.

    >>> ds, report = load_manifest_dataset("data/train.jsonl", max_duration_s=30.0)
    >>> ds[0]["audio"].shape, ds[0]["text"]          # (samples,) float32 at 16 kHz
    >>> report.counts                                  # {"missing": 2, "too_long": 1}
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from asr_analogy.errors import AudioError, ManifestError
from asr_analogy.io.audio import TARGET_SR, duration_seconds, is_silent, load_audio, probe_audio, rms_dbfs
from asr_analogy.io.manifest import read_manifest
from asr_analogy.io.skips import SkipReport

log = logging.getLogger(__name__)

KEPT_FIELDS = ("domain", "speaker", "split", "source", "voice")
"""Optional manifest fields carried into each item as strings (``None`` where absent)."""

SKIP_REASONS = {
    "empty_text": "the transcript is empty or only whitespace",
    "missing": "the audio file does not exist",
    "empty_file": "the audio file has 0 bytes or holds no samples",
    "unreadable": "the audio file cannot be decoded (corrupt or unsupported format, NaN/Inf samples)",
    "silent": "the audio is silent (RMS below the silence threshold)",
    "too_long": "the audio is longer than max_duration_s (Whisper's window is 30 s, or audio_context_s)",
    "too_short": "the audio is shorter than min_duration_s",
}
"""Why an utterance was skipped, by reason code."""


def _records(manifest_or_records: str | os.PathLike | Iterable[dict]) -> tuple[list[dict], str]:
    if isinstance(manifest_or_records, (str, os.PathLike)):
        return read_manifest(manifest_or_records), str(manifest_or_records)
    records = []
    for i, rec in enumerate(manifest_or_records):
        if not isinstance(rec, dict) or "audio_filepath" not in rec or "text" not in rec:
            raise ManifestError(f"record {i}: expected a dict with 'audio_filepath' and 'text'")
        records.append(rec)
    return records, "<records>"


def _length_problem(path, seconds: float, max_duration_s: float, min_duration_s: float) -> tuple[str | None, str]:
    if seconds > max_duration_s:
        return "too_long", f"{path}: {seconds:.2f} s > max_duration_s {max_duration_s:g} s"
    if seconds < min_duration_s:
        return "too_short", f"{path}: {seconds:.3f} s < min_duration_s {min_duration_s:g} s"
    return None, ""


def _decode_problem(exc: AudioError) -> str:
    return "empty_file" if "holds no samples" in str(exc) else "unreadable"


def check_utterance(
    rec: dict,
    *,
    sr: int = TARGET_SR,
    max_duration_s: float = 30.0,
    min_duration_s: float = 0.1,
    silence_dbfs: float = -60.0,
) -> tuple[np.ndarray | None, str | None, str]:
    """Decode one manifest record and decide whether it is usable.

    Returns ``(audio, None, "")`` with float32 mono audio of shape (samples,) at ``sr`` Hz, or
    ``(None, reason, detail)`` with a reason code from ``SKIP_REASONS``.
    """
    reason, detail, _ = screen_utterance(rec, max_duration_s=max_duration_s, min_duration_s=min_duration_s,
                                         use_manifest_duration=False, probe=False)
    if reason is not None:
        return None, reason, detail
    path = Path(rec["audio_filepath"])
    try:
        audio = load_audio(path, sr=sr)
    except AudioError as exc:
        return None, _decode_problem(exc), str(exc)
    reason, detail = _length_problem(path, duration_seconds(audio, sr), max_duration_s, min_duration_s)
    if reason is not None:
        return None, reason, detail
    if is_silent(audio, silence_dbfs):
        return None, "silent", f"{path}: RMS {rms_dbfs(audio):.1f} dBFS < {silence_dbfs:g} dBFS"
    return audio, None, ""


def screen_utterance(
    rec: dict,
    *,
    max_duration_s: float = 30.0,
    min_duration_s: float = 0.1,
    use_manifest_duration: bool = True,
    probe: bool = True,
) -> tuple[str | None, str, float | None]:
    """The checks of a record that need no decoding: ``(reason or None, detail, duration in seconds or None)``.

    The duration is the manifest's ``duration`` (when ``use_manifest_duration`` and it is a positive number),
    else the file header's (when ``probe``; an undecodable header or one with no samples is a skip).
    """
    path = str(rec["audio_filepath"])  # os functions on strings: this runs once per clip of a large corpus
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        return "empty_text", f"{path}: empty transcript", None
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        return "missing", f"{path} does not exist", None
    if info.st_size == 0:
        return "empty_file", f"{path} is empty (0 bytes)", None
    seconds = rec.get("duration") if use_manifest_duration else None
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        if not probe:
            return None, "", None
        try:
            seconds = probe_audio(path)
        except AudioError as exc:
            return _decode_problem(exc), str(exc), None
    reason, detail = _length_problem(path, float(seconds), max_duration_s, min_duration_s)
    return reason, detail, float(seconds)


class PackedRows:
    """A list of small JSON-able dicts packed in one bytes buffer with an offsets array.

    Data-loader workers share it with the parent without copying: no per-row Python objects whose reference
    counts would touch (and so copy) the parent's memory pages.
    """

    def __init__(self, rows: Iterable[dict]):
        blobs = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in rows]
        self.offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        self.buffer = np.frombuffer(b"".join(blobs), dtype=np.uint8) if blobs else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict:
        return json.loads(self.buffer[self.offsets[i]: self.offsets[i + 1]].tobytes())


class ManifestAudioDataset(torch.utils.data.Dataset):
    """The usable utterances of a manifest; ``ds[i]`` decodes clip ``i`` (a dict, see ``load_manifest_dataset``).

    A clip found unusable when read (silent, corrupt body, decoded length out of the limits) is recorded and
    replaced by the next usable clip in manifest order, so batches keep their size and the replacement is the
    same for every run and seed.
    """

    def __init__(self, rows: list[dict], report: SkipReport, *, sr: int, max_duration_s: float,
                 min_duration_s: float, silence_dbfs: float, skip_log: str | os.PathLike | None = None):
        self.rows = PackedRows(rows)
        self.durations = np.array([r["duration"] for r in rows], dtype=np.float32)  # seconds, for batching
        self.report = report  # the skips found while loading
        self.skip_log = Path(skip_log) if skip_log is not None else None
        self._limits = dict(sr=sr, max_duration_s=max_duration_s, min_duration_s=min_duration_s,
                            silence_dbfs=silence_dbfs)
        self._late: dict[int, dict] = {}  # position -> skip entry found when reading, in this process

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def texts(self) -> list[str]:
        """The transcripts, in order (no audio is decoded)."""
        return [self.rows[i]["text"] for i in range(len(self))]

    def __getitem__(self, pos: int) -> dict:
        n = len(self)
        for step in range(n):
            j = (int(pos) + step) % n
            if j in self._late:
                continue
            row = self.rows[j]
            audio, reason, detail = check_utterance(row, **self._limits)
            if reason is None:
                return {**row, "audio": audio, "duration": duration_seconds(audio, self._limits["sr"])}
            self._record(j, row, reason, detail)
        report = self.final_report()
        raise ManifestError(f"no usable utterances in {report.source}: all {report.n_total} skipped "
                            f"({_counts(report)}); first: {report.skipped[0]['detail']}")

    def _record(self, pos: int, row: dict, reason: str, detail: str) -> None:
        entry = {"index": row["index"], "audio_filepath": row["audio_filepath"], "reason": reason, "detail": detail}
        self._late[pos] = entry
        log.warning("skipping clip when reading it: %s", detail)
        if self.skip_log is not None:
            self.skip_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.skip_log, "a", encoding="utf-8") as fh:  # one short append per skip, from any process
                fh.write(json.dumps({"pos": pos, **entry}, ensure_ascii=False) + "\n")

    def final_report(self) -> SkipReport:
        """The loading report plus the clips found unusable when read (here and, via ``skip_log``, in workers)."""
        late = dict(self._late)
        if self.skip_log is not None and self.skip_log.is_file():
            for line in self.skip_log.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    late.setdefault(entry.pop("pos"), entry)
        report = SkipReport(source=self.report.source, n_total=self.report.n_total, n_kept=self.report.n_kept,
                            kept_seconds=self.report.kept_seconds, skipped=list(self.report.skipped))
        for pos in sorted(late):
            report.skipped.append(late[pos])
            report.n_kept -= 1
            report.kept_seconds -= float(self.durations[pos])
        report.skipped.sort(key=lambda s: s["index"])
        return report


def _counts(report: SkipReport) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(report.counts.items()))


def load_manifest_dataset(
    manifest_or_records: str | os.PathLike | Iterable[dict],
    sr: int = TARGET_SR,
    max_duration_s: float = 30.0,
    min_duration_s: float = 0.1,
    *,
    silence_dbfs: float = -60.0,
    progress: bool = True,
    skip_log: str | os.PathLike | None = None,
) -> tuple[ManifestAudioDataset, SkipReport]:
    """Index a manifest into a ``ManifestAudioDataset``; skip what is unusable without decoding any audio.

    Args:
        manifest_or_records: a JSONL manifest path (``audio_filepath`` relative to it or absolute), or a list of
            records with ``audio_filepath`` (absolute or relative to the working directory) and ``text``.
        sr: sampling rate of the decoded audio, Hz.
        max_duration_s: longer clips are skipped (``too_long``); 30 s is Whisper's window; pass the model's
            ``audio_context_s`` when the window was shortened.
        min_duration_s: shorter clips are skipped (``too_short``).
        silence_dbfs: clips whose RMS level is below this (dBFS) are skipped (``silent``) when read.
        progress: show a progress bar on a terminal.
        skip_log: a JSONL file where clips found unusable when read are appended (shared by worker processes).

    Returns:
        ``(dataset, report)``. ``dataset[i]`` is a dict: ``audio`` (float32 numpy, shape (samples,), mono,
        ``sr`` Hz), ``text`` (stripped), ``duration`` (seconds, of the decoded audio), ``audio_filepath``
        (absolute), ``index`` (position in the manifest), and ``domain``, ``speaker``, ``split``, ``source``,
        ``voice`` (strings or ``None``). ``dataset.durations`` are the manifest's (or header's) durations, in
        seconds. ``report`` is the ``SkipReport`` of loading; ``dataset.final_report()`` adds later skips.

    Raises:
        ManifestError: the manifest is malformed, empty, or every utterance was skipped.
    """
    from tqdm.auto import tqdm

    records, source = _records(manifest_or_records)
    report = SkipReport(source=source, n_total=len(records))
    if not records:
        raise ManifestError(f"manifest {source} holds no utterances")
    rows = []
    for i, rec in enumerate(tqdm(records, desc=f"indexing {Path(source).name}", disable=None if progress else True)):
        reason, detail, seconds = screen_utterance(rec, max_duration_s=max_duration_s, min_duration_s=min_duration_s)
        if reason is not None:
            report.add(i, str(rec["audio_filepath"]), reason, detail)
            continue
        report.n_kept += 1
        report.kept_seconds += seconds
        row = {"text": rec["text"].strip(), "duration": seconds,
               "audio_filepath": os.path.abspath(rec["audio_filepath"]), "index": i}
        for key in KEPT_FIELDS:
            value = rec.get(key)
            row[key] = None if value is None else str(value)
        rows.append(row)
    if not rows:
        raise ManifestError(
            f"no usable utterances in {source}: all {report.n_total} skipped ({_counts(report)}); "
            f"first: {report.skipped[0]['detail']}"
        )
    dataset = ManifestAudioDataset(rows, report, sr=sr, max_duration_s=max_duration_s, min_duration_s=min_duration_s,
                                   silence_dbfs=silence_dbfs, skip_log=skip_log)
    return dataset, report


class LengthGroupedSampler(torch.utils.data.Sampler):
    """A shuffled order in which each run of ``batch_size`` indices has similar durations (little padding).

    Per epoch: a random permutation (seeded by ``seed + epoch``), cut into buckets of ``bucket_batches ×
    batch_size`` indices; each bucket is sorted by duration (longest first) and cut into batches; the full
    batches are shuffled together and the one short batch, if any, comes last (so batch boundaries stay where a
    ``BatchSampler`` of ``batch_size`` cuts). ``set_epoch`` is called by the Trainer at each epoch.
    """

    def __init__(self, durations, batch_size: int, *, seed: int = 0, bucket_batches: int = 50):
        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch_size = int(batch_size)
        self.bucket = self.batch_size * int(bucket_batches)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.durations)

    def batches(self) -> list[list[int]]:
        """The epoch's batches of indices, in order."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(len(self.durations), generator=g).numpy()
        full, short = [], []
        for start in range(0, len(perm), self.bucket):
            bucket = perm[start: start + self.bucket]
            bucket = bucket[np.argsort(-self.durations[bucket], kind="stable")]
            for b in range(0, len(bucket), self.batch_size):
                batch = bucket[b: b + self.batch_size].tolist()
                (full if len(batch) == self.batch_size else short).append(batch)
        order = torch.randperm(len(full), generator=g).tolist()
        return [full[k] for k in order] + short

    def __iter__(self) -> Iterator[int]:
        return iter([i for batch in self.batches() for i in batch])
