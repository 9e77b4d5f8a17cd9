"""``synthesize()``: sentences in, a synthetic-speech corpus out (16 kHz mono wav + manifest).

Output layout::

    OUT_DIR/
      manifest.jsonl      one line per synthetic utterance (written atomically, last but one)
      skipped.jsonl       one line per sentence or sample that produced no audio: {"id", "reason", "detail", ...}
      synthesized.json    written last: options, counts, the run's signature; its presence means complete
      wavs/ID-K.wav       sample K of sentence ID, 16-bit PCM, 16 kHz, mono (each written atomically)

Each sample is keyed by sha256 over (normalized text, backend, backend version, voice and its model digest,
backend options that change audio, seed, speed, pitch). The raw 16 kHz audio is stored under that key in the
cache (``cache_dir``, default ``${ASR_ANALOGY_CACHE:-~/.cache/asr_analogy}/tts``), so a second run, a run
killed midway and restarted, or another output directory asking for the same samples synthesizes nothing.
The channel (telephone, noise, reverb) and level normalization are applied after the cache.

Sample k of sentence i uses voice/speed/pitch combination ``(i * samples_per_sentence + k) mod n_combos``
(voices × speeds × pitches, in that order): with 5 samples and 5 voices every sentence is read once by each
voice; with 1 sample the voices take turns across sentences. Seeds derive from ``seed``, k and the text.
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from asr_analogy.errors import ConfigError, ManifestError, OutputExistsError
from asr_analogy.io.atomic import atomic_file, temporary_dir
from asr_analogy.io.audio import TARGET_SR, is_silent, resample, write_wav
from asr_analogy.io.manifest import write_manifest
from asr_analogy.speech.tts.base import _REGISTRY, TextError, TTSBackend, TTSError, backend_class
from asr_analogy.speech.tts.channel import apply_channel, channel_to_string
from asr_analogy.speech.tts.normalize import normalize_for_tts
from asr_analogy.speech.tts.workers import run_pool

CACHE_FORMAT = 1
MAX_WORDS = 80
"""Longest sentence spoken, in words (about 25 s at a voice's usual pace; Whisper hears 30 s). Longer lines go
to the skip report (``too_long``): split them into sentences first."""
MARKER = "synthesized.json"
SKIPPED = "skipped.jsonl"
# Fields of an input manifest that describe the real recording, not the synthetic one: not carried over.
_NOT_CARRIED = ("audio_filepath", "duration", "offset", "source", "voice", "speaker", "text", "id")


def default_cache_dir() -> Path:
    """``${ASR_ANALOGY_CACHE:-~/.cache/asr_analogy}/tts``."""
    root = os.environ.get("ASR_ANALOGY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "asr_analogy")
    return Path(root) / "tts"


# ---- input ------------------------------------------------------------------------------------------------


def read_sentences(source) -> list[dict]:
    """Sentences as records with at least ``text`` and ``id``.

    ``source``: a text file (one sentence per non-blank line; ids ``line00001``...), a JSONL manifest (``text``
    read from each line, other fields kept; ``id`` from the record, else the stem of ``audio_filepath``, else
    the line number), or a list of strings / dicts with ``text``. Ids are made filename-safe and unique.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ManifestError(f"input {path} does not exist (give a text file or a JSONL manifest)")
        raw = path.read_text(encoding="utf-8", errors="strict")
        first = next((line.strip() for line in raw.splitlines() if line.strip()), "")
        if path.suffix in (".jsonl", ".json") or first.startswith("{"):
            records = _read_jsonl(raw, path)
        else:
            records = [
                {"text": line.strip(), "id": f"line{n:05d}"} for n, line in enumerate(raw.splitlines(), 1) if line.strip()
            ]
        where = str(path)
    elif isinstance(source, (list, tuple)):
        records, where = [], "input list"
        for n, item in enumerate(source, 1):
            if isinstance(item, str):
                records.append({"text": item, "id": f"s{n:05d}"})
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                records.append(dict(item))
            else:
                raise ManifestError(f"input list item {n}: expected a string or a dict with 'text', got {item!r}")
    else:
        raise ManifestError(f"input must be a file path or a list of sentences, got {type(source).__name__}")
    if not records:
        raise ManifestError(f"{where} holds no sentences")
    seen: dict[str, int] = {}
    for n, rec in enumerate(records, 1):
        uid = rec.get("id")
        if uid is None and rec.get("audio_filepath"):
            uid = Path(str(rec["audio_filepath"])).stem
        uid = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(uid if uid is not None else f"line{n:05d}")).strip("._") or f"s{n}"
        if uid in seen:
            seen[uid] += 1
            uid = f"{uid}_{seen[uid]}"
        seen.setdefault(uid, 1)
        rec["source_id"] = rec.get("id", uid)
        rec["id"] = uid
    return records


def _read_jsonl(raw: str, path: Path) -> list[dict]:
    records = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            raise ManifestError(f"{path}:{lineno}: expected a JSON object with a string field 'text'")
        records.append(rec)
    return records


# ---- tasks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """One sample to produce. Picklable: it travels to worker processes."""

    id: str
    sample: int
    tts_text: str
    voice: str
    speed: float
    pitch: float
    seed: int
    key: str
    cache_path: str
    out_path: str
    channel: str
    channel_seed: int
    peak_dbfs: float | None


def _seed_for(seed: int, *parts) -> int:
    digest = hashlib.sha256("\0".join(str(p) for p in (seed, *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


def _cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def run_task(task: _Task, backend: TTSBackend) -> dict:
    """Produce one sample: from the cache, or synthesize (then cache); channel; write the wav. Never raises:
    a failure comes back as {"ok": False, "reason", "detail"}."""
    try:
        import soundfile as sf

        cache_path = Path(task.cache_path)
        synthesized = False
        if cache_path.is_file():
            audio, _ = sf.read(str(cache_path), dtype="float32")
        else:
            audio, sr = backend.synthesize(task.tts_text, task.voice, seed=task.seed, speed=task.speed, pitch=task.pitch)
            audio = resample(audio, sr, TARGET_SR)
            if is_silent(audio):
                return {"ok": False, "reason": "silent_output",
                        "detail": f"the backend returned silence (below -60 dBFS) for {task.tts_text!r}"}
            with atomic_file(cache_path, "wb") as fh:
                sf.write(fh, audio, TARGET_SR, format="WAV", subtype="FLOAT")
            synthesized = True
        if task.channel:
            audio = apply_channel(audio, TARGET_SR, task.channel, seed=task.channel_seed)
        if task.peak_dbfs is not None:
            peak = float(np.max(np.abs(audio)))
            if peak > 0:
                audio = audio * (10.0 ** (task.peak_dbfs / 20.0) / peak)
        write_wav(task.out_path, audio, TARGET_SR)
        return {"ok": True, "duration": round(len(audio) / TARGET_SR, 4), "synthesized": synthesized}
    except Exception as exc:  # one failed sample never stops the batch; it goes to the skip report
        reason = "text_error" if isinstance(exc, TextError) else "tts_error"
        return {"ok": False, "reason": reason, "detail": f"{type(exc).__name__}: {exc}"}


# ---- the public function ----------------------------------------------------------------------------------


def synthesize(
    texts_or_manifest,
    out_dir: str | os.PathLike,
    *,
    backend: str | TTSBackend = "piper",
    voices: Sequence[str] | None = None,
    samples_per_sentence: int = 1,
    seed: int = 0,
    workers: int = 2,
    channel=None,
    cache_dir: str | os.PathLike | None = None,
    speeds: Sequence[float] | None = None,
    pitches: Sequence[float] | None = None,
    keep_fields: bool = True,
    normalize: bool = True,
    backend_options: dict | None = None,
    peak_dbfs: float | None = -1.0,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Synthesize every sentence ``samples_per_sentence`` times; returns ``OUT_DIR/manifest.jsonl``.

    texts_or_manifest: text file, JSONL manifest or list (see ``read_sentences``).
    backend: a registered name (``piper``, ``hibari``, ``espeak``, ``coqui``, ``transformers``) or an instance;
        ``backend_options`` are passed to its constructor.
    voices: voice ids (default: the backend's default voice). Checked before anything runs.
    speeds: speed factors (1.0 = the voice's pace); pitches: shifts in semitones. Default [1.0] and [0.0].
    seed: base seed; each sample's seed derives from it, the sample index and the text.
    workers: processes, each holding its own loaded backend; 1 runs in this process. Workers are fresh
        interpreters (``tts.workers``): they never import the caller's main script, so no ``__main__`` guard is
        needed, and a backend passed as an instance must be a class importable by its module path.
    channel: channel spec applied after synthesis (``"telephone"``, ``"noise:snr_db=20"``, ...; see ``channel``).
    keep_fields: carry the input record's fields (domain, split, ...) into the output records. Records get
        ``id`` = ``{sentence id}-{k}``, ``source_id`` (the input id), ``text`` (the original transcript),
        ``tts_text`` (what was spoken), ``source: synthetic``, ``voice``, ``speaker`` = ``backend:voice``,
        ``backend``, ``speed``, ``pitch``, ``seed``, ``sample``, ``channel``, ``duration`` (s).
    normalize: English text normalization (``normalize_for_tts``); turn off for other languages.
    peak_dbfs: scale each output so its peak sits at this level (None: keep the backend's level).
    force: replace a finished OUT_DIR made with other settings (the same settings return at once).

    Empty or symbol-only sentences, unsupported characters, and samples whose synthesis raises or returns
    silence go to ``skipped.jsonl``; the rest is written. Raises ``VoiceNotFoundError`` (listing the installed
    voices), ``BackendUnavailableError``, ``ConfigError`` for bad options, ``OutputExistsError``, and
    ``TTSError`` when no sample at all could be made.
    """
    out_dir = Path(out_dir)
    if int(samples_per_sentence) < 1:
        raise ConfigError(f"samples_per_sentence must be >= 1, got {samples_per_sentence}")
    if int(workers) < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    speeds = [1.0] if not speeds else [float(s) for s in speeds]
    pitches = [0.0] if not pitches else [float(p) for p in pitches]
    for s in speeds:
        if not 0.25 <= s <= 4.0:
            raise ConfigError(f"speed must be a factor in [0.25, 4], got {s}")
    for p in pitches:
        if not -24.0 <= p <= 24.0:
            raise ConfigError(f"pitch must be a shift in semitones in [-24, 24], got {p}")
    channel_str = channel_to_string(channel)  # validates the spec
    records = read_sentences(texts_or_manifest)

    # The backend in this process: voices, versions and cache keys; it synthesizes only when workers == 1.
    if isinstance(backend, TTSBackend):
        engine = backend
        class_path = f"{type(engine).__module__}:{type(engine).__qualname__}"
    else:
        cls = backend_class(str(backend))
        options = dict(backend_options or {})
        if "threads" in inspect.signature(cls).parameters:
            options.setdefault("threads", max(1, (os.cpu_count() or 1) // int(workers)))
        engine = cls(**options)
        class_path = _REGISTRY[str(backend)]
    voice_ids = [engine.check_voice(v) for v in (voices or [None])]
    combos = [(v, s, p) for v in voice_ids for s in speeds for p in pitches]
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    version, cache_options = engine.version(), engine.cache_options()
    voice_ident = {v: engine.voice_identity(v) for v in voice_ids}

    # Plan every sample; text problems go straight to the skip report.
    skipped: list[dict] = []
    planned: list[tuple[dict, _Task]] = []
    n = int(samples_per_sentence)
    for i, rec in enumerate(records):
        try:
            tts_text = normalize_for_tts(rec["text"]) if normalize else _plain(rec["text"])
            if len(tts_text.split()) > MAX_WORDS:
                raise TextError(f"{len(tts_text.split())} words: longer than the {MAX_WORDS}-word limit of one "
                                "sentence (split the line into sentences)", reason="too_long")
        except TextError as exc:
            skipped.append({"id": rec["id"], "reason": exc.reason, "detail": str(exc), "text": rec["text"]})
            continue
        for k in range(n):
            voice, speed, pitch = combos[(i * n + k) % len(combos)]
            sample_seed = _seed_for(seed, k, tts_text)
            key = _cache_key({
                "format": CACHE_FORMAT, "backend": engine.name, "version": version, "voice": voice,
                "voice_identity": voice_ident[voice], "options": cache_options, "text": tts_text,
                "seed": sample_seed, "speed": speed, "pitch": pitch, "sr": TARGET_SR,
            })
            task = _Task(
                id=f"{rec['id']}-{k}", sample=k, tts_text=tts_text, voice=voice, speed=speed, pitch=pitch,
                seed=sample_seed, key=key, cache_path=str(cache_root / key[:2] / f"{key}.wav"),
                out_path=str(out_dir / "wavs" / f"{rec['id']}-{k}.wav"), channel=channel_str,
                channel_seed=_seed_for(sample_seed, "channel"), peak_dbfs=peak_dbfs,
            )
            planned.append((rec, task))

    signature = _cache_key({"tasks": [asdict(t) | {"out_path": Path(t.out_path).name, "cache_path": ""}
                                      for _, t in planned],
                            "fields": [_carried(r, keep_fields) for r, _ in planned], "skipped": skipped})
    manifest_path = out_dir / "manifest.jsonl"
    if _finished_with(out_dir, signature) and not force:
        if progress:
            print(f"{out_dir} is already synthesized with these settings")
        return manifest_path
    replacing = (out_dir / MARKER).exists() or manifest_path.exists()
    if replacing and not force:
        raise OutputExistsError(
            f"{out_dir} holds a finished synthesis with other settings; pass force=True (--force) to replace it"
        )
    # The wavs go to a hidden staging folder beside wavs/; an existing output is replaced only once the new one
    # is complete, so a run killed midway leaves it as it was (and its staging folder is removed by the next run).
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = temporary_dir(out_dir / "wavs")
    final_path = {t.id: Path(t.out_path) for _, t in planned}
    (staging / "wavs").mkdir()
    planned = [(rec, replace(t, out_path=str(staging / "wavs" / Path(t.out_path).name))) for rec, t in planned]
    try:
        return _run_and_write(planned, final_path, staging, out_dir, engine, class_path, workers, skipped, records,
                              signature, replacing, progress, summary_fields=dict(
                                  backend=engine.name, backend_version=version, voices=voice_ids, speeds=speeds,
                                  pitches=pitches, samples_per_sentence=n, seed=seed, channel=channel_str,
                                  normalize=normalize, peak_dbfs=peak_dbfs, cache_dir=str(cache_root.resolve())),
                              keep_fields=keep_fields)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_and_write(planned, final_path, staging, out_dir, engine, class_path, workers, skipped, records, signature,
                   replacing, progress, summary_fields, keep_fields) -> Path:
    """Synthesize the planned samples into ``staging``, then put the output in place: wavs/, skipped.jsonl,
    manifest.jsonl and last the marker. Before this last step nothing of an existing output is touched."""
    manifest_path = out_dir / "manifest.jsonl"

    # Run: cached samples need no backend; the rest go to the workers.
    started = time.perf_counter()
    results: dict[str, dict] = {}
    todo = [t for _, t in planned]
    uncached = [t for t in todo if not Path(t.cache_path).is_file()]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"synthesize ({engine.name})", unit="utt", disable=not progress)
    try:
        if int(workers) > 1 and len(uncached) > 1:
            pool_options = dict(engine.options)
            results.update(run_pool(uncached, class_path, pool_options, int(workers), lambda: bar.update(1)))
            todo = [t for t in todo if t.id not in results]
        for task in todo:
            results[task.id] = run_task(task, engine)
            bar.update(1)
    finally:
        bar.close()

    out_records = []
    for rec, task in planned:
        res = results[task.id]
        if not res["ok"]:
            skipped.append({"id": task.id, "reason": res["reason"], "detail": res["detail"], "text": rec["text"],
                            "voice": task.voice, "sample": task.sample})
            continue
        out = _carried(rec, keep_fields) | {
            "id": task.id, "source_id": rec["source_id"], "audio_filepath": str(final_path[task.id].resolve()),
            "text": rec["text"], "tts_text": task.tts_text, "duration": res["duration"], "source": "synthetic",
            "voice": task.voice, "speaker": f"{engine.name}:{task.voice}", "backend": engine.name,
            "speed": task.speed, "pitch": task.pitch, "seed": task.seed, "sample": task.sample,
            "channel": task.channel or "none",
        }
        out_records.append(out)

    if not out_records:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(collections.Counter(s["reason"] for s in skipped).items()))
        where = "" if replacing else f"; see {out_dir / SKIPPED}"
        if not replacing:  # an existing output keeps its own skip report
            _write_skips(out_dir, skipped)
        first = f" (first: {skipped[0]['detail']})" if skipped else ""
        raise TTSError(f"no audio was synthesized: all {len(records)} sentences were skipped or failed "
                       f"({reasons}){first}{where}")
    # Swap in: unmark first, so an interruption from here on is never taken for a finished output.
    (out_dir / MARKER).unlink(missing_ok=True)
    wavs = out_dir / "wavs"
    if wavs.exists():
        os.replace(wavs, staging / "old")  # removed with the staging folder
    os.replace(staging / "wavs", wavs)
    _write_skips(out_dir, skipped)
    write_manifest(out_records, manifest_path)
    n_synth = sum(1 for r in results.values() if r.get("synthesized"))
    summary = {
        "signature": signature, **summary_fields,
        "sentences": len(records), "samples_written": len(out_records), "skipped": len(skipped),
        "synthesized": n_synth, "from_cache": len(out_records) - n_synth,
        "audio_hours": round(sum(r["duration"] for r in out_records) / 3600.0, 4),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    with atomic_file(out_dir / MARKER) as fh:
        json.dump(summary, fh, indent=2)
    if progress:
        print(
            f"{len(out_records)} samples ({summary['audio_hours'] * 60:.1f} min of audio; {n_synth} synthesized, "
            f"{summary['from_cache']} from the cache), {len(skipped)} skipped -> {manifest_path}"
        )
    return manifest_path


def _write_skips(out_dir: Path, skipped: list[dict]) -> None:
    with atomic_file(out_dir / SKIPPED) as fh:
        for entry in skipped:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _carried(rec: dict, keep_fields: bool) -> dict:
    if not keep_fields:
        return {}
    return {k: v for k, v in rec.items() if k not in _NOT_CARRIED and k != "source_id"}


def _plain(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise TextError(f"nothing to say: empty text: {text!r}", reason="empty_text")
    if not any(ch.isalnum() for ch in text):
        raise TextError(f"nothing to say: no words (symbols only): {text!r}", reason="no_words")
    return text


def _finished_with(out_dir: Path, signature: str) -> bool:
    marker = out_dir / MARKER
    if not marker.is_file() or not (out_dir / "manifest.jsonl").is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("signature") == signature
    except (OSError, json.JSONDecodeError):
        return False


def iter_voices(voices: Iterable[str] | None) -> list[str] | None:
    """``None`` or a list of voices, splitting comma-separated entries ("en-us,en+m3")."""
    if voices is None:
        return None
    out = [v.strip() for item in voices for v in str(item).split(",") if v.strip()]
    return out or None
