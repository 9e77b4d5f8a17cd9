"""Stage ``prep``: the real corpus → ``data/real.jsonl`` (domain and split on every utterance, source real).

The corpus comes from a ``data_prep`` preparer or an existing manifest; ``corpus.max_duration_s`` drops long
clips and ``corpus.degrade`` passes every clip through a condition such as real hold music at 5 dB SNR (copies
under ``data/degraded/``; ``asr_analogy.speech.degrade``); the summary names the condition in words.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from asr_analogy.errors import ManifestError
from asr_analogy.io.manifest import read_manifest, write_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.plan import domain_counts, resolve_domains
from asr_analogy.analogy.stages.base import Stage

SPLITS = ("train", "dev", "test")


def describe(ctx: RecipeContext) -> list[str]:
    c = ctx.cfg.corpus
    if c.preparer == "manifest":
        src = f"manifest {ctx.cfg.resolve_path(c.manifest)}"
    else:
        ok = "" if _deps.preparer_exists(c.preparer) else "  (module not found!)"
        src = f"data_prep.{c.preparer}.prepare(from_dir={c.from_dir}){ok}"
        from_dir = ctx.cfg.resolve_path(c.from_dir)
        if from_dir and not Path(from_dir).exists():
            src += f"  (note: corpus.from_dir {from_dir} does not exist here; set it with --set corpus.from_dir=...)"
    lim = f", drop clips > {c.max_duration_s:g} s" if c.max_duration_s else ""
    deg = f", every clip through '{c.degrade}'" if c.degrade else ""
    lines = [f"real speech from {src}{lim}{deg}", f"condition: {condition(c.degrade)}"]
    counts = _known_domain_counts(ctx)
    if counts is None:
        lines.append("domains: checked once the corpus is prepared")
    else:  # the configured domains exist (ConfigError naming them otherwise), before anything runs
        resolve_domains(ctx.cfg, counts)
        lines.append(f"domains in the corpus: {', '.join(sorted(counts))}")
    return lines


def _known_domain_counts(ctx: RecipeContext) -> dict[str, int] | None:
    """Train utterances per domain as far as they are known without preparing anything: from the manifest
    (given, or prepared by an earlier run), else from the preparer's fixed domain list; None when unknown."""
    c = ctx.cfg.corpus
    manifest = (Path(ctx.cfg.resolve_path(c.manifest)) if c.preparer == "manifest"
                else ctx.out / "data" / "corpus" / "manifest.jsonl")
    if manifest.is_file():
        return domain_counts(_checked_records(manifest, c.max_duration_s)[0], "train")
    domains = None if c.preparer == "manifest" else _deps.preparer_domains(c.preparer)
    return {d: 1 for d in domains} if domains else None


def _checked_records(src: Path, max_duration_s: float | None) -> tuple[list[dict], int]:
    """The corpus records marked source real, and how many were longer than ``max_duration_s``."""
    kept, dropped = [], 0
    for i, r in enumerate(read_manifest(src), 1):
        for key in ("domain", "split"):
            if not r.get(key):
                raise ManifestError(f"{src}:{i}: the recipe needs a '{key}' on every utterance")
        if r["split"] not in SPLITS:
            raise ManifestError(f"{src}:{i}: split must be one of {SPLITS}, got {r['split']!r}")
        if r.get("source", "real") != "real":
            raise ManifestError(f"{src}:{i}: the corpus must be real speech, got source {r['source']!r}")
        if max_duration_s is not None and r.get("duration") is not None and r["duration"] > max_duration_s:
            dropped += 1
            continue
        kept.append({**r, "source": "real"})
    if not kept:
        raise ManifestError(f"{src}: no utterance left (max_duration_s={max_duration_s})")
    return kept, dropped


def run(ctx: RecipeContext) -> dict:
    c = ctx.cfg.corpus
    access = ctx.access.for_stage("prep")
    if c.preparer == "manifest":
        src = Path(ctx.cfg.resolve_path(c.manifest))
    else:
        src = _deps.prepare_corpus(
            c.preparer, ctx.out / "data" / "corpus", from_dir=ctx.cfg.resolve_path(c.from_dir),
            cache_dir=ctx.cfg.resolve_path(c.cache_dir), options=c.options,
        )
    kept, dropped = _checked_records(src, c.max_duration_s)
    resolve_domains(ctx.cfg, domain_counts(kept, "train"))  # the configured domains exist: checked before writing
    if c.degrade:
        kept = _degrade(ctx, kept, c.degrade)
    # prep copies metadata (and with corpus.degrade rewrites the audio of every domain alike); no model reads it
    access.log({"consumer": "prep", "purpose": "partition", "file": str(src), "n": len(kept),
                "domains": sorted({r["domain"] for r in kept}), "splits": sorted({r["split"] for r in kept}),
                "sources": ["real"], "target_real_audio": False})
    write_manifest(kept, ctx.real_manifest, relative=False)
    counts = Counter((r["domain"], r["split"]) for r in kept)
    ctx.forget_plan()
    ctx.echo(f"corpus: {len(kept)} utterances in {len({d for d, _ in counts})} domains"
             + (f" ({dropped} longer than {c.max_duration_s:g} s dropped)" if dropped else ""))
    ctx.echo(f"condition: {condition(c.degrade)}")
    return {"source": str(src), "utterances": len(kept), "dropped_long": dropped, "degrade": c.degrade,
            "condition": condition(c.degrade),
            "counts": {f"{d}/{s}": n for (d, s), n in sorted(counts.items())}}


def condition(spec: str | None) -> str:
    """The acoustic condition of a run in words (``asr_analogy.speech.degrade.describe_condition``)."""
    from asr_analogy.speech.degrade import describe_condition

    return describe_condition(spec)


def _degrade(ctx: RecipeContext, records: list[dict], spec: str) -> list[dict]:
    """Copies of the real clips (every domain and split) under data/degraded/, passed through condition ``spec``
    (``asr_analogy.speech.degrade``), seeded by ``<domain>/<id>`` and corpus.degrade_seed; babble is drawn only
    from utterances outside the targets and pseudo-targets, the clip's own split and the test split."""
    from functools import lru_cache

    from asr_analogy.io.audio import load_audio, write_wav
    from asr_analogy.speech.degrade import Degrader, MusicSource, babble_pools, parse_degrade, utterance_seed

    c = ctx.cfg.corpus
    kinds = {step.kind for step in parse_degrade(spec)}
    keys = [f"{r['domain']}/{r.get('id') or Path(r['audio_filepath']).stem}" for r in records]
    paths = dict(zip(keys, (r["audio_filepath"] for r in records)))
    resolved = resolve_domains(ctx.cfg, domain_counts(records, "train"))  # pseudo-targets as the plan picks them
    hidden = [*ctx.cfg.domains.targets, *(p for t in resolved.values() for p in t["pseudo"])]
    pools = babble_pools(({**r, "id": k} for r, k in zip(records, keys)), hidden) if "babble" in kinds else {}
    degrader = Degrader(spec, music=MusicSource(_deps.hold_music_files(ctx.cfg.resolve_path(c.music_dir)))
                        if "music" in kinds else None, donor_audio=lru_cache(maxsize=None)(lambda k: load_audio(paths[k])))
    out_dir = ctx.out / "data" / "degraded"
    out = []
    for i, (r, key) in enumerate(zip(records, keys)):
        audio, drawn = degrader.apply(load_audio(r["audio_filepath"]), utterance_seed(key, c.degrade_seed),
                                      pools.get(r["split"], ()))
        path = write_wav(out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', key.split('/', 1)[1])}-{i}.wav", audio, 16000)
        out.append({**r, "audio_filepath": str(path.resolve()), "degraded": spec, **({"drawn": drawn} if drawn else {})})
    ctx.echo(f"corpus: {len(out)} clips passed through '{spec}'")
    return out


STAGE = Stage("prep", run, inputs=("corpus",), outputs=("data/real.jsonl", "data/degraded/"), describe=describe,
              doc="real corpus → data/real.jsonl")
