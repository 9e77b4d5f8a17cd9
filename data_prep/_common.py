"""Shared plumbing of the corpus preparers: audio conversion, splits, atomic output, summaries, entry checks.

Every preparer writes one output directory, atomically (``asr_analogy.io.atomic.atomic_dir``)::

    OUT_DIR/
      manifest.jsonl                 all utterances (fields of ``asr_analogy.io.manifest`` plus ``id``)
      manifests/{domain}.{split}.jsonl   the same records grouped; audio paths relative to manifests/
      skipped.jsonl                  one line per dropped entry: {"id", "reason", "detail"}
      prepared.json                  written last: corpus name, options, counts and hours per domain/split
      audio/...                      16 kHz mono PCM16 wav, when the preparer converts audio

A directory holding ``prepared.json`` is complete. Preparing again into it with the same corpus and options
prints that it is already prepared and returns; with other options, or when ``prepared.json`` is missing, it
refuses unless ``force``.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from asr_analogy.errors import AudioError, ManifestError, OutputExistsError
from asr_analogy.io.atomic import atomic_dir, atomic_file
from asr_analogy.io.audio import TARGET_SR, load_audio, load_audio_bytes, probe_audio, to_mono, write_wav
from asr_analogy.io.manifest import write_manifest
from asr_analogy.io.skips import SkipReport

PREPARED_MARKER = "prepared.json"
SPLITS = ("train", "dev", "test")

# Split names found in the wild and the name used in manifests.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "devel": "dev",
    "valid": "dev",
    "validation": "dev",
    "val": "dev",
    "test": "test",
    "eval": "test",
    "evaluation": "test",
}


class CorpusError(ManifestError):
    """A corpus cannot be prepared: missing files or columns, no usable utterance, a failed package fetch."""


def cache_root() -> Path:
    """The cache directory of the project: ``$ASR_ANALOGY_CACHE``, else ``~/.cache/asr_analogy``."""
    env = os.environ.get("ASR_ANALOGY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asr_analogy"


def normalize_split(name: str | None) -> str | None:
    """Map common split names to train / dev / test (``validation`` -> ``dev``); other names are kept."""
    if name is None:
        return None
    key = str(name).strip()
    return SPLIT_ALIASES.get(key.lower(), key)


def safe_name(text: str) -> str:
    """A file-name-safe form of an utterance id: runs of other characters become ``_``."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return out or "utt"


# ---- audio -------------------------------------------------------------------------------------------------


def convert_audio(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    sr: int = TARGET_SR,
) -> float:
    """Decode ``src`` (optionally the segment ``offset`` .. ``offset + duration`` seconds), down-mix to mono,
    resample to ``sr`` Hz and write a PCM16 wav at ``dst`` atomically. Returns the duration in seconds.

    Raises ``AudioError`` naming the file when it is missing, unreadable, empty or the segment lies outside it.
    """
    if offset == 0.0 and duration is None:
        audio = load_audio(src, sr=sr)
    else:
        audio = _read_segment(Path(src), offset, duration, sr)
    if audio.size == 0:
        raise AudioError(f"audio file {src} holds no samples")
    write_wav(dst, audio, sr)
    return float(len(audio)) / float(sr)


def _read_segment(path: Path, offset: float, duration: float | None, sr: int) -> np.ndarray:
    import soundfile as sf

    probe_audio(path)
    try:
        with sf.SoundFile(str(path)) as fh:
            file_sr = fh.samplerate
            start = int(round(offset * file_sr))
            if start >= fh.frames:
                raise AudioError(f"segment start {offset:.3f} s lies beyond the end of {path}")
            frames = -1 if duration is None else int(round(duration * file_sr))
            fh.seek(start)
            data = fh.read(frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"cannot decode audio file {path}: {exc}") from None
    if data.shape[0] == 0:
        return np.zeros(0, np.float32)  # convert_audio reports the empty segment
    return to_mono(data, file_sr, sr, what=f"audio file {path}")


# ---- splits ------------------------------------------------------------------------------------------------


def text_key(text: str) -> str:
    """Text reduced to lowercase letters, digits and single spaces; identical prompts share a key."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def stable_hash(text: str) -> str:
    """Hex SHA-1 of ``text``: a platform- and run-independent ordering key."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Numbers of train, dev and test items for ``n`` items and (train, dev, test) fractions.

    dev = round(n * f_dev) and test = round(n * f_test), but at least 1 each once n >= 3 (test first: with
    n = 2 one item goes to test); train takes the rest. E.g. n = 15, (0.7, 0.1, 0.2) -> (10, 2, 3).
    """
    _, f_dev, f_test = fractions
    n_test = int(round(n * f_test))
    n_dev = int(round(n * f_dev))
    if n >= 2 and f_test > 0:
        n_test = max(n_test, 1)
    if n >= 3 and f_dev > 0:
        n_dev = max(n_dev, 1)
    n_test = min(n_test, n)
    n_dev = min(n_dev, n - n_test)
    return n - n_dev - n_test, n_dev, n_test


def assign_splits(
    items: Sequence[tuple[str, str]], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
) -> dict[str, str]:
    """Deterministic train/dev/test split of ``items`` = [(item_id, text), ...] of one domain.

    Items with the same ``text_key`` form one group and land in the same split, so a sentence never sits in
    both train and test. Groups are ordered by the SHA-1 of their key; test is filled first until it holds
    its share (``split_counts``), then dev, then train. Returns {item_id: split}.
    """
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for item_id, text in items:
        groups[text_key(text) or item_id].append(item_id)
    _, n_dev, n_test = split_counts(len(items), fractions)
    out: dict[str, str] = {}
    taken = {"test": 0, "dev": 0}
    for key in sorted(groups, key=stable_hash):
        members = groups[key]
        if taken["test"] < n_test:
            split = "test"
        elif taken["dev"] < n_dev:
            split = "dev"
        else:
            split = "train"
        if split in taken:
            taken[split] += len(members)
        for item_id in members:
            out[item_id] = split
    return out


# ---- summaries ---------------------------------------------------------------------------------------------


def summarize(records: Iterable[dict]) -> dict:
    """Counts and hours per domain and split: {"n_utterances", "hours", "per_domain": {domain: {split:
    {"n", "hours"}, ...}}}. Missing domain or split is shown as ``-``."""
    table: dict[str, dict[str, dict]] = {}
    total_n, total_s = 0, 0.0
    for rec in records:
        dom = rec.get("domain") or "-"
        split = rec.get("split") or "-"
        cell = table.setdefault(dom, {}).setdefault(split, {"n": 0, "seconds": 0.0})
        cell["n"] += 1
        cell["seconds"] += float(rec.get("duration") or 0.0)
        total_n += 1
        total_s += float(rec.get("duration") or 0.0)
    per_domain = {
        dom: {split: {"n": c["n"], "hours": round(c["seconds"] / 3600.0, 6)} for split, c in sorted(splits.items())}
        for dom, splits in sorted(table.items())
    }
    return {"n_utterances": total_n, "hours": round(total_s / 3600.0, 6), "per_domain": per_domain}


def format_summary(summary: dict) -> str:
    """A text table of ``summarize`` output: one row per domain, columns per split, cells ``n / hours``."""
    per_domain = summary["per_domain"]
    splits = [s for s in SPLITS if any(s in d for d in per_domain.values())]
    splits += sorted({s for d in per_domain.values() for s in d} - set(splits))
    width = max([len("domain"), len("total")] + [len(d) for d in per_domain]) + 2

    def cell(n: int, hours: float) -> str:
        return f"{n:>5} / {hours:8.4f} h"

    lines = ["".ljust(width) + "".join(s.rjust(20) for s in splits) + "total".rjust(20)]
    col_tot = {s: [0, 0.0] for s in splits}
    for dom, row in per_domain.items():
        parts = []
        n_row, h_row = 0, 0.0
        for s in splits:
            c = row.get(s, {"n": 0, "hours": 0.0})
            parts.append(cell(c["n"], c["hours"]).rjust(20))
            n_row += c["n"]
            h_row += c["hours"]
            col_tot[s][0] += c["n"]
            col_tot[s][1] += c["hours"]
        lines.append(dom.ljust(width) + "".join(parts) + cell(n_row, h_row).rjust(20))
    lines.append(
        "total".ljust(width)
        + "".join(cell(*col_tot[s]).rjust(20) for s in splits)
        + cell(summary["n_utterances"], summary["hours"]).rjust(20)
    )
    lines.append(f"{summary['n_utterances']} utterances, {summary['hours'] * 60.0:.1f} minutes (cells: count / hours)")
    return "\n".join(lines)


# ---- output directory --------------------------------------------------------------------------------------


def check_existing(out_dir: str | os.PathLike, corpus: str, options: dict, force: bool) -> Path | None:
    """Decide what to do with an existing ``out_dir`` before any work.

    Returns the manifest path when ``out_dir`` is a complete output of ``corpus`` with the same ``options`` and
    not ``force`` (the caller then skips). Returns None when the caller should (re)build. Raises
    ``OutputExistsError`` when ``out_dir`` exists, is not such an output, and ``force`` is false.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists() or force:
        return None
    marker = out_dir / PREPARED_MARKER
    if marker.is_file():
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            info = {}
        if info.get("corpus") == corpus and info.get("options") == _jsonable(options):
            if (out_dir / "manifest.jsonl").is_file():
                return out_dir / "manifest.jsonl"
        raise OutputExistsError(
            f"{out_dir} holds a corpus prepared as {info.get('corpus')!r} with other options; "
            f"pass --force to replace it"
        )
    raise OutputExistsError(f"{out_dir} already exists and is not a prepared corpus; pass --force to replace it")


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def finish_output(
    tmp_dir: Path,
    records: list[dict],
    skips: SkipReport,
    *,
    corpus: str,
    options: dict,
    extra: dict | None = None,
) -> dict:
    """Write manifests, the skip report and ``prepared.json`` (last) into ``tmp_dir``; returns the summary.

    ``records`` carry absolute ``audio_filepath``s; those under ``tmp_dir`` are written relative. Raises
    ``CorpusError`` when ``records`` is empty (the caller's ``atomic_dir`` then leaves nothing behind).
    """
    if not records:
        raise CorpusError(f"no usable utterance in the {corpus} corpus ({skips.summary()})")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_dir, 0o777 & ~umask)  # a temporary directory is created 0700; the corpus is for all users
    write_manifest(records, tmp_dir / "manifest.jsonl")
    groups: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for rec in records:
        groups[(safe_name(rec.get("domain") or "all"), safe_name(rec.get("split") or "all"))].append(rec)
    man_dir = tmp_dir / "manifests"
    for (dom, split), recs in sorted(groups.items()):
        rel = []
        for rec in recs:
            rec = dict(rec)
            audio = Path(rec["audio_filepath"])
            try:
                audio.relative_to(tmp_dir)
                rec["audio_filepath"] = os.path.relpath(audio, man_dir)
            except ValueError:
                pass
            rel.append(rec)
        write_manifest(rel, man_dir / f"{dom}.{split}.jsonl", relative=False)
    skips.write_jsonl(tmp_dir / "skipped.jsonl")
    summary = summarize(records)
    info = {
        "corpus": corpus,
        "options": _jsonable(options),
        **summary,
        "skipped": skips.counts,
        **(extra or {}),
    }
    with atomic_file(tmp_dir / PREPARED_MARKER) as fh:
        json.dump(info, fh, indent=1, sort_keys=False)
        fh.write("\n")
    return summary


def report(summary: dict, skips: SkipReport, out_dir: Path, echo: Callable[[str], None] | None = print) -> None:
    """Print the per-domain/split table, the skip counts and where the manifests are."""
    if echo is None:
        return
    echo(format_summary(summary))
    echo(skips.summary())
    echo(f"wrote {out_dir / 'manifest.jsonl'}")


# ---- generic importer ----------------------------------------------------------------------------------------

CARRY_FIELDS = ("domain", "split", "speaker", "source", "voice")
"""Manifest fields an importer takes over from its input when present."""


@dataclass
class Entry:
    """One utterance found in an input corpus, before its audio is checked.

    ``audio``: a file on disk; or ``audio_bytes``: an in-memory audio file (wav, flac, ...). ``offset`` and
    ``duration`` (seconds) select a segment of ``audio``; ``duration=None`` means to the end. ``fields`` are
    copied into the manifest record (domain, split, speaker, source, voice, and any extra keys).
    """

    id: str
    text: str | None
    audio: Path | None = None
    audio_bytes: bytes | None = None
    offset: float = 0.0
    duration: float | None = None
    fields: dict = field(default_factory=dict)


def write_corpus(
    entries: Iterable[Entry],
    out_dir: str | os.PathLike,
    *,
    corpus: str,
    options: dict,
    force: bool = False,
    resample: bool = False,
    skips: SkipReport | None = None,
    echo: Callable[[str], None] | None = print,
    total: int | None = None,
) -> Path:
    """Check every entry and write the corpus output (see the module docstring); returns the manifest path.

    Entries with empty text (no letter or digit), missing or unreadable audio, a repeated id or a ``source``
    other than real/synthetic go to the skip report. Whole audio files are referenced where they are
    (absolute paths; duration from the header) unless ``resample``; segments, in-memory audio and, with
    ``resample``, every file are written as 16 kHz mono wav under ``audio/``. Raises ``CorpusError`` when no
    entry is usable; nothing is written then.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    existing = check_existing(out_dir, corpus, options, force)
    if existing is not None:
        if echo:
            echo(f"{out_dir} is already prepared ({corpus}); pass --force to rebuild it")
        return existing
    skips = skips if skips is not None else SkipReport()
    seen_ids: set[str] = set()
    used_names: set[str] = set()
    with atomic_dir(out_dir, force=force) as tmp:
        records = []
        for entry in tqdm(entries, desc=f"{corpus}", unit="utt", total=total, disable=echo is None):
            rec = _check_entry(entry, tmp, skips, seen_ids, used_names, resample)
            if rec is not None:
                records.append(rec)
        summary = finish_output(tmp, records, skips, corpus=corpus, options=options)
    report(summary, skips, out_dir, echo)
    return out_dir / "manifest.jsonl"


def _check_entry(entry: Entry, tmp: Path, skips: SkipReport, seen_ids: set, used_names: set, resample: bool):
    text = "" if entry.text is None else " ".join(str(entry.text).split())
    if not re.search(r"[^\W_]", text):
        skips.skip(entry.id, "empty_text", f"text {entry.text!r} holds no word")
        return None
    if entry.id in seen_ids:
        skips.skip(entry.id, "duplicate_id", "an earlier entry has the same id")
        return None
    fields = {k: v for k, v in entry.fields.items() if v is not None and v != ""}
    if fields.get("source") not in (None, "real", "synthetic"):
        skips.skip(entry.id, "invalid_source", f"source must be real or synthetic, got {fields['source']!r}")
        return None
    if "split" in fields:
        fields["split"] = normalize_split(fields["split"])
    try:
        if entry.audio_bytes is not None:
            audio = load_audio_bytes(entry.audio_bytes, entry.id)
            dst = _audio_dest(tmp, entry.id, used_names)
            write_wav(dst, audio, TARGET_SR)
            path, duration = dst, len(audio) / TARGET_SR
        elif entry.audio is None:
            skips.skip(entry.id, "missing_audio", "no audio given")
            return None
        else:
            src = Path(entry.audio)
            if not src.is_file():
                skips.skip(entry.id, "missing_audio", f"{src} does not exist")
                return None
            file_seconds = probe_audio(src)
            whole = entry.offset <= 0 and (entry.duration is None or abs(entry.duration - file_seconds) <= 0.02)
            if whole and not resample:
                path, duration = src.resolve(), file_seconds
            else:
                dst = _audio_dest(tmp, entry.id, used_names)
                seg = None if whole else entry.duration
                duration = convert_audio(src, dst, offset=0.0 if whole else entry.offset, duration=seg)
                path = dst
    except AudioError as exc:
        skips.skip(entry.id, "unreadable_audio", str(exc))
        return None
    seen_ids.add(entry.id)
    return {"audio_filepath": str(path), "text": text, "duration": round(duration, 4), **fields, "id": entry.id}


def _audio_dest(tmp: Path, utt_id: str, used: set) -> Path:
    name = safe_name(utt_id)
    candidate, k = name, 1
    while candidate in used:
        k += 1
        candidate = f"{name}-{k}"
    used.add(candidate)
    return tmp / "audio" / f"{candidate}.wav"


def resolve_audio_path(raw: str, base: Path, extensions: Sequence[str] = (".wav", ".flac")) -> Path:
    """``raw`` as a path: absolute as it is, else relative to ``base``; a name without suffix that does not
    exist is tried with each of ``extensions`` (LJSpeech-style ids)."""
    path = Path(os.path.expanduser(raw.strip()))
    if not path.is_absolute():
        path = base / path
    if not path.exists() and not path.suffix:
        for ext in extensions:
            if path.with_suffix(ext).exists():
                return path.with_suffix(ext)
    return path
