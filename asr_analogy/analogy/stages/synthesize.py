"""Stage ``synthesize``: TTS of the train/dev text of every domain the plan uses → ``data/synthetic/``.

Voices may name their backend (``"hibari:heart"``); with several voices, sentences are dealt to voices by a hash
of their domain and id (``synthesis_calls``), so a sentence keeps its voice whichever domains are synthesized.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from asr_analogy.errors import ConfigError, ManifestError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.manifest import read_manifest, write_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.plan import domain_counts, resolve_domains
from asr_analogy.analogy.stages.base import Stage


def synthesis_calls(default_backend: str, voices: list[str] | None, texts: list[dict], samples: int):
    """The ``synthesize`` calls of the synthesize stage: ``(backend, voices, sentences or None, samples)``.

    One voice: a single call over all sentences (sentences None). Several voices (of one backend or several):
    sample j of a sentence goes to voice (h + j) mod V, where h is a hash of the sentence's domain and id, so a
    sentence is read by the same voice whichever other domains are synthesized with it (the models trained on a
    domain's synthetic speech then do not change when targets are added); one call per voice.
    """
    groups = voices_by_backend(default_backend, voices)
    backend_voices = [(backend, v) for backend, names in groups.items() for v in (names or [None])]
    n_voices = len(backend_voices)
    if n_voices == 1:
        backend, voice = backend_voices[0]
        return [(backend, None if voice is None else [voice], None, samples)]
    if samples >= n_voices and samples % n_voices:
        raise ConfigError(
            f"synthesis.samples_per_sentence ({samples}) must be below the number of voices ({n_voices}) or a "
            f"multiple of it"
        )

    def sentence_hash(t: dict) -> int:
        key = f"{t.get('domain')}/{t.get('id') or t['text']}"
        return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)

    calls = []
    for voice_index, (backend, voice) in enumerate(backend_voices):
        subset = [t for t in texts if any((sentence_hash(t) + j) % n_voices == voice_index for j in range(samples))]
        if subset:
            calls.append((backend, [voice], subset, max(1, samples // n_voices)))
    return calls


def voices_by_backend(default_backend: str, voices: list[str] | None) -> dict[str, list[str]]:
    """Group ``synthesis.voices`` by backend: ``"hibari:heart"`` names its backend (a registered backend name
    before the colon); any other entry is a voice of ``default_backend``. An empty list means the default voice.

    >>> voices_by_backend("piper", ["joe", "hibari:heart"])
    {'piper': ['joe'], 'hibari': ['heart']}
    """
    from asr_analogy.speech.tts.base import backend_names

    known = set(backend_names())
    out: dict[str, list[str]] = {}
    for v in voices or []:
        head, sep, tail = v.partition(":")
        if sep and head in known and tail:
            out.setdefault(head, []).append(tail)
        else:
            out.setdefault(default_backend, []).append(v)
    return out or {default_backend: []}


def used_domains(ctx: RecipeContext) -> list[str]:
    """Targets, sources and pseudo-targets (with their sources) of every target: the domains whose text is read."""
    used = set(ctx.cfg.domains.targets)
    for info in resolve_domains(ctx.cfg, domain_counts(ctx.real_records(), "train")).values():
        used |= set(info["sources"]) | set(info["pseudo"])
        for sources in info["pseudo_sources"].values():
            used |= set(sources)
    return sorted(used)


def describe(ctx: RecipeContext) -> list[str]:
    s = ctx.cfg.synthesis
    voices = ", ".join(s.voices) if s.voices else "backend default"
    chan = f", channel {s.channel}" if s.channel else ""
    return [f"backend {s.backend}, voices {voices}, {s.samples_per_sentence} sample(s)/sentence, "
            f"text of splits {'/'.join(s.splits)}{chan}"]


def _write_tts_input(path: Path, records: list[dict]) -> Path:
    """Text records for the TTS (the audio path points at nothing; only the text is read)."""
    with atomic_file(path) as fh:
        for r in records:
            fh.write(json.dumps({k: v for k, v in r.items() if k not in ("source", "speaker", "raw_text")},
                                ensure_ascii=False) + "\n")
    return path


def run(ctx: RecipeContext) -> dict:
    s = ctx.cfg.synthesis
    access = ctx.access.for_stage("synthesize")
    used = set(used_domains(ctx))
    texts = [r for r in access.texts(ctx.real_manifest, consumer="synthesize", splits=s.splits) if r.get("domain") in used]
    if not texts:
        raise ConfigError(f"{ctx.cfg.source_path}: no text to synthesize in splits {s.splits}")
    all_text = _write_tts_input(ctx.out / "data" / "synthesis_input.jsonl", texts)
    recs = []
    for backend_name, voice, subset, samples in synthesis_calls(s.backend, s.voices, texts, s.samples_per_sentence):
        backend = _deps.register_tts_backend(backend_name)
        slug = "audio" if subset is None else re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{backend_name}_{voice[0]}")
        text = all_text
        if subset is not None:
            text = _write_tts_input(ctx.out / "data" / f"synthesis_input.{slug}.jsonl", subset)
        kwargs = dict(backend=backend, voices=voice, samples_per_sentence=samples, seed=s.seed, workers=s.workers,
                      channel=s.channel, cache_dir=ctx.cfg.resolve_path(s.cache_dir), force=True, **s.options)
        part = read_manifest(_deps.synthesize(text, ctx.syn_dir / slug, **kwargs))
        if subset is not None:
            for r in part:
                r["id"] = f"{slug}/{r.get('id')}"
        recs += part
    if any(not r.get("domain") or not r.get("split") for r in recs):
        raise ManifestError(f"{ctx.syn_manifest}: synthesized records lost their domain/split fields")
    for r in recs:
        r["source"] = "synthetic"
        r["voice"] = r.get("speaker") or r.get("voice")  # backend:voice, unique across backends
    write_manifest(recs, ctx.syn_manifest)
    ctx.forget_plan()
    voices = Counter(str(r.get("voice")) for r in recs)
    ctx.echo(f"synthesized {len(recs)} clips from {len(texts)} sentences; voices: {dict(voices)}")
    return {"sentences": len(texts), "clips": len(recs), "voices": dict(voices)}


STAGE = Stage("synthesize", run, inputs=("domains", "synthesis"),
              outputs=("data/synthesis_input*.jsonl", "data/synthetic/manifest.jsonl"), describe=describe,
              doc="TTS of train/dev text")
