"""JSONL manifests → Hugging Face ``datasets.Dataset`` with decoded 16-kHz mono audio, plus a skip report.

Audio is decoded here with soundfile and resampled with librosa (``asr_analogy.io.audio.load_audio``); the
``datasets`` ``Audio`` feature is not used, so neither torchaudio nor torchcodec is needed.

Utterances that cannot train a model are skipped, never raised: a missing, empty (0 bytes or no samples),
undecodable, silent, too long or too short file, or an empty transcript. Each skip is recorded in a
``SkipReport`` (counts per reason, one entry per utterance with its path and the reason), which can be written
as JSON. Only when *every* utterance is skipped does loading fail, with a ``ManifestError`` that gives the counts.

    >>> ds, report = load_manifest_dataset("data/train.jsonl", max_duration_s=30.0)
    >>> ds[0]["audio"].shape, ds[0]["text"]          # (samples,) float32 at 16 kHz
    >>> report.counts                                  # {"silent": 2, "too_long": 1}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from asr_analogy.errors import AudioError, ManifestError
from asr_analogy.io.audio import TARGET_SR, duration_seconds, is_silent, load_audio, rms_dbfs
from asr_analogy.io.manifest import read_manifest
from asr_analogy.io.skips import SkipReport

KEPT_FIELDS = ("domain", "speaker", "split", "source", "voice")
"""Optional manifest fields carried into the dataset as string columns (``None`` where absent)."""

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
    path = Path(rec["audio_filepath"])
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        return None, "empty_text", f"{path}: empty transcript"
    if not path.is_file():
        return None, "missing", f"{path} does not exist"
    if path.stat().st_size == 0:
        return None, "empty_file", f"{path} is empty (0 bytes)"
    try:
        audio = load_audio(path, sr=sr)
    except AudioError as exc:
        reason = "empty_file" if "holds no samples" in str(exc) else "unreadable"
        return None, reason, str(exc)
    seconds = duration_seconds(audio, sr)
    if seconds > max_duration_s:
        return None, "too_long", f"{path}: {seconds:.2f} s > max_duration_s {max_duration_s:g} s"
    if seconds < min_duration_s:
        return None, "too_short", f"{path}: {seconds:.3f} s < min_duration_s {min_duration_s:g} s"
    if is_silent(audio, silence_dbfs):
        return None, "silent", f"{path}: RMS {rms_dbfs(audio):.1f} dBFS < {silence_dbfs:g} dBFS"
    return audio, None, ""


def load_manifest_dataset(
    manifest_or_records: str | os.PathLike | Iterable[dict],
    sr: int = TARGET_SR,
    max_duration_s: float = 30.0,
    min_duration_s: float = 0.1,
    *,
    silence_dbfs: float = -60.0,
    progress: bool = True,
):
    """Load a manifest into a ``datasets.Dataset`` with decoded audio; skip unusable utterances.

    Args:
        manifest_or_records: a JSONL manifest path (``audio_filepath`` relative to it or absolute), or a list of
            records with ``audio_filepath`` (absolute or relative to the working directory) and ``text``.
        sr: sampling rate of the decoded audio, Hz.
        max_duration_s: longer clips are skipped (``too_long``); 30 s is Whisper's window; pass the model's
            ``audio_context_s`` when the window was shortened.
        min_duration_s: shorter clips are skipped (``too_short``).
        silence_dbfs: clips whose RMS level is below this (dBFS) are skipped (``silent``).
        progress: show a progress bar on a terminal.

    Returns:
        ``(dataset, report)``. Columns: ``audio`` (float32, shape (samples,), mono, ``sr`` Hz; returned as numpy
        arrays), ``text``, ``duration`` (seconds, of the decoded audio), ``audio_filepath`` (absolute),
        ``index`` (position in the manifest), and ``domain``, ``speaker``, ``split``, ``source``, ``voice``
        (strings or ``None``). ``report`` is a ``SkipReport``.

    Raises:
        ManifestError: the manifest is malformed, empty, or every utterance was skipped.
    """
    import datasets
    from tqdm.auto import tqdm

    records, source = _records(manifest_or_records)
    report = SkipReport(source=source, n_total=len(records))
    if not records:
        raise ManifestError(f"manifest {source} holds no utterances")

    features = datasets.Features(
        {
            "audio": datasets.Sequence(datasets.Value("float32")),
            "text": datasets.Value("string"),
            "duration": datasets.Value("float32"),
            "audio_filepath": datasets.Value("string"),
            "index": datasets.Value("int32"),
            **{k: datasets.Value("string") for k in KEPT_FIELDS},
        }
    )
    # Decoded audio is gathered in chunks of Arrow tables so peak memory stays near the Arrow size.
    chunks, rows = [], []
    for i, rec in enumerate(tqdm(records, desc=f"decoding {Path(source).name}", disable=None if progress else True)):
        audio, reason, detail = check_utterance(
            rec, sr=sr, max_duration_s=max_duration_s, min_duration_s=min_duration_s, silence_dbfs=silence_dbfs
        )
        if reason is not None:
            report.add(i, str(rec["audio_filepath"]), reason, detail)
            continue
        seconds = duration_seconds(audio, sr)
        report.n_kept += 1
        report.kept_seconds += seconds
        row = {
            "audio": audio,
            "text": rec["text"].strip(),
            "duration": seconds,
            "audio_filepath": str(Path(rec["audio_filepath"]).resolve()),
            "index": i,
        }
        for key in KEPT_FIELDS:
            value = rec.get(key)
            row[key] = None if value is None else str(value)
        rows.append(row)
        if len(rows) >= 256:
            chunks.append(datasets.Dataset.from_list(rows, features=features))
            rows = []
    if rows:
        chunks.append(datasets.Dataset.from_list(rows, features=features))

    if not chunks:
        raise ManifestError(
            f"no usable utterances in {source}: all {report.n_total} skipped "
            f"({', '.join(f'{n} {r}' for r, n in sorted(report.counts.items()))}); "
            f"first: {report.skipped[0]['detail']}"
        )
    dataset = chunks[0] if len(chunks) == 1 else datasets.concatenate_datasets(chunks)
    dataset = dataset.with_format("numpy", columns=["audio"], output_all_columns=True)
    return dataset, report
