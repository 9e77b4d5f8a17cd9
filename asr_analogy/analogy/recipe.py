"""The syn2real recipe: prep → synthesize → finetune → vectors → select_lambda → evaluate → report.

``run(config_path)`` (CLI ``asr-analogy run CONFIG``) runs every stage that is not complete; ``demo()`` (CLI
``asr-analogy demo``) runs the IVR recipe's ``demo`` variant and prints the result table. Outputs, all under
``<exp_dir>/<name>/``::

    data/real.jsonl              the real corpus (domain, split, source real), after corpus.max_duration_s
    data/synthetic/manifest.jsonl  TTS audio of the train/dev text of every used domain (source synthetic)
    models/<role>-<key>/         one fine-tune per job (see ``plan``): train.jsonl, model/, job.json
    vectors/                     Synthetic2Real vectors (.safetensors) and index.json (norms, cosines)
    lambda/<target>.json         the λ chosen per target, how, and the λ curves behind the choice
    eval/<target>/hyps/<system>.jsonl, eval/<target>/metrics/<system>.json, eval/<target>/lambda_curve.json
    RESULTS.md, results.json, plots/*.png
    access_log.jsonl             every hand-out of utterances (the leakage audit trail)
    stages/<stage>.done.json     completion markers

Systems evaluated on each target's real test split: ``base``, ``C`` (target synthetic), ``syn2real``
(θ_C + λ·(θ_B − θ_A) at the selected λ), ``ensemble`` (θ_C + λ·ensemble vector), ``upper_bound`` (trained on
target real audio; a reference, not a method) and, when asked, ``syn2real_oracle`` (λ picked on target real dev;
labelled, never the default).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from asr_analogy.errors import AsrAnalogyError, ConfigError, ManifestError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.manifest import read_manifest, write_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.access import DataAccess
from asr_analogy.analogy.config import RecipeConfig, load_recipe_config
from asr_analogy.analogy.lambdas import choose_lambda, mean_curve
from asr_analogy.analogy.plan import Job, Plan, Suite, build_plan, domain_counts
from asr_analogy.analogy.stages import Stage, StageRunner

STAGES = ("prep", "synthesize", "finetune", "vectors", "select_lambda", "evaluate", "report")
SPLITS = ("train", "dev", "test")

SYSTEM_LABELS = {
    "base": "base model",
    "C": "C (target synthetic)",
    "syn2real": "C + syn2real",
    "ensemble": "C + syn2real ensemble",
    "upper_bound": "upper bound (target real)",
    "syn2real_oracle": "C + syn2real, oracle λ",
}


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _write_json(path: Path, obj) -> None:
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, default=str)
        fh.write("\n")


def _read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def synthesis_calls(default_backend: str, voices: list[str] | None, texts: list[dict], samples: int):
    """The ``synthesize`` calls of the synthesize stage: ``(backend, voices, sentences or None, samples)``.

    One voice: a single call over all sentences (sentences None). Several voices (of one backend or several):
    sample j of a sentence goes to voice (h + j) mod V, where h is a hash of the sentence's domain and id, so a
    sentence is read by the same voice whichever other domains are synthesized with it (the models trained on a
    domain's synthetic speech then do not change when targets are added); one call per voice.
    """
    groups = voices_by_backend(default_backend, voices)
    flat = [(b, v) for b, names in groups.items() for v in (names or [None])]
    n_voices = len(flat)
    if n_voices == 1:
        b, v = flat[0]
        return [(b, None if v is None else [v], None, samples)]
    if samples >= n_voices and samples % n_voices:
        raise ConfigError(
            f"synthesis.samples_per_sentence ({samples}) must be below the number of voices ({n_voices}) or a "
            f"multiple of it"
        )

    def h(t: dict) -> int:
        key = f"{t.get('domain')}/{t.get('id') or t['text']}"
        return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)

    calls = []
    for v_index, (b, v) in enumerate(flat):
        subset = [t for t in texts if any((h(t) + j) % n_voices == v_index for j in range(samples))]
        if subset:
            calls.append((b, [v], subset, max(1, samples // n_voices)))
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


class _Decoder:
    """Transcribes records with θ (a model directory) or θ_C + λ·v, keeping one model loaded at a time and
    remembering results, so a λ curve, C (λ = 0) and the selected system never decode the same thing twice."""

    KEEP = 2  # models kept loaded (θ_C and one other, e.g. the upper bound)

    def __init__(self, recipe: "Syn2RealRecipe"):
        self.recipe = recipe
        self.loaded: dict[str, tuple] = {}  # model dir → (model, processor, LambdaModel), oldest first
        self.vectors: dict[str, dict] = {}
        self.memo: dict[tuple, list[dict]] = {}

    def _load(self, model_dir: str) -> tuple:
        if model_dir in self.loaded:
            self.loaded[model_dir] = self.loaded.pop(model_dir)
            return self.loaded[model_dir]
        from asr_analogy.analogy.vectors import LambdaModel
        from asr_analogy.io.checkpoint import load_state_dict

        while len(self.loaded) >= self.KEEP:
            self.loaded.pop(next(iter(self.loaded)))
        model, processor = _deps.load_model(model_dir, self.recipe.cfg.device)
        self.loaded[model_dir] = (model, processor, LambdaModel(model, load_state_dict(model_dir)))
        return self.loaded[model_dir]

    def _vector(self, path: Path) -> dict:
        from asr_analogy.analogy.vectors import load_vector

        key = str(path)
        if key not in self.vectors:
            self.vectors = {key: load_vector(path)}  # one vector in memory at a time is enough
        return self.vectors[key]

    def hyps(self, model_dir, records: list[dict], vector_file: Path | None = None, lam: float = 0.0) -> list[dict]:
        """Records with ``hypothesis`` from θ (``vector_file`` None or λ = 0) or θ + λ·v."""
        ev = self.recipe.cfg.evaluate
        model_dir = str(model_dir)
        use_vector = vector_file is not None and float(lam) != 0.0
        key = (model_dir, str(vector_file) if use_vector else None, float(lam) if use_vector else 0.0,
               tuple(r.get("id") or r["audio_filepath"] for r in records))
        if key not in self.memo:
            model, processor, lm = self._load(model_dir)
            if use_vector:
                lm.set(float(lam), self._vector(vector_file))
            elif lm.lam not in (None, 0.0):
                lm.reset()
            self.memo[key] = _deps.transcribe(
                model, records, processor=processor, batch_size=ev.batch_size, num_beams=ev.num_beams,
                device=self.recipe.cfg.device, max_new_tokens=ev.max_new_tokens,
            )
        return [dict(r) for r in self.memo[key]]


class Syn2RealRecipe:
    """One experiment: a validated config, its output directory and its stages."""

    def __init__(self, cfg: RecipeConfig, echo: Callable[[str], None] = print):
        self.cfg = cfg
        self.echo = echo
        self.out = cfg.out_dir
        self.access = DataAccess(cfg.domains.targets, self.out / "access_log.jsonl")
        self.real_manifest = self.out / "data" / "real.jsonl"
        self.syn_dir = self.out / "data" / "synthetic"
        self.syn_manifest = self.syn_dir / "manifest.jsonl"
        self._plan: Plan | None = None
        self._base_dir: str | None = None
        self.decoder = _Decoder(self)
        self.runner = StageRunner(
            self.out,
            [
                Stage("prep", self.stage_prep, ("corpus",), self.describe_prep, "real corpus → data/real.jsonl"),
                Stage("synthesize", self.stage_synthesize, ("domains", "synthesis"), self.describe_synthesize,
                      "TTS of train/dev text"),
                Stage("finetune", self.stage_finetune, ("base_model", "finetune", "ensemble", "lambda", "domains"),
                      self.describe_finetune, "A, B, S, C, upper bound (+ pseudo-target and ensemble models)"),
                Stage("vectors", self.stage_vectors, ("ensemble",), self.describe_vectors, "θ_B − θ_A, ensembles"),
                Stage("select_lambda", self.stage_select_lambda, ("lambda", "evaluate"), self.describe_lambda,
                      "λ per target"),
                Stage("evaluate", self.stage_evaluate, ("evaluate",), self.describe_evaluate,
                      "all systems on target real test"),
                Stage("report", self.stage_report, (), self.describe_report, "RESULTS.md, plots"),
            ],
            cfg.section_hash,
        )

    # ---- shared helpers -------------------------------------------------------------------------------------
    @property
    def base_dir(self) -> str:
        if self._base_dir is None:
            name = self.cfg.base_model
            if not name.startswith("bundled:") and not os.path.isabs(name) and self.cfg.source_path:
                local = Path(self.cfg.source_path).parent / name
                if local.is_dir():
                    name = str(local.resolve())
            self._base_dir = _deps.resolve_base_model(name)
        return self._base_dir

    def _real_records(self) -> list[dict]:
        if not self.real_manifest.is_file():
            raise ManifestError(f"{self.real_manifest} is missing: run the prep stage first")
        return read_manifest(self.real_manifest)

    def _voices(self) -> list[str] | None:
        if self.syn_manifest.is_file():
            seen: dict[str, None] = {}
            for r in read_manifest(self.syn_manifest, resolve_paths=False):
                if r.get("voice") is not None:
                    seen.setdefault(str(r["voice"]))
            return list(seen) or None
        return list(self.cfg.synthesis.voices) if self.cfg.synthesis.voices else None

    def plan(self) -> Plan:
        """The fine-tuning plan (needs the prepared corpus, and the synthetic manifest for voice ensembles)."""
        if self._plan is None:
            counts = domain_counts(self._real_records(), "train")
            self._plan = build_plan(self.cfg, counts, self._voices())
        return self._plan

    def job_dir(self, key: str) -> Path:
        return self.out / "models" / self.plan().jobs[key].dirname

    def model_dir(self, key: str) -> Path:
        """Final directory of a completed job."""
        done = self.job_dir(key) / "job.json"
        if not done.is_file():
            raise AsrAnalogyError(f"model {self.job_dir(key).name} is not trained yet: run the finetune stage")
        return Path(_read_json(done)["model_dir"])

    def _manifest_of(self, source: str) -> Path:
        return self.real_manifest if source == "real" else self.syn_manifest

    def _used_domains(self) -> list[str]:
        recs = self._real_records()
        counts = domain_counts(recs, "train")
        used = set(self.cfg.domains.targets)
        from asr_analogy.analogy.plan import resolve_domains

        for info in resolve_domains(self.cfg, counts).values():
            used |= set(info["sources"]) | set(info["pseudo"])
            for s in info["pseudo_sources"].values():
                used |= set(s)
        return sorted(used)

    # ---- prep ----------------------------------------------------------------------------------------------
    def describe_prep(self) -> list[str]:
        c = self.cfg.corpus
        if c.preparer == "manifest":
            src = f"manifest {self.cfg.resolve_path(c.manifest)}"
        else:
            ok = "" if _deps.preparer_exists(c.preparer) else "  (module not found!)"
            src = f"data_prep.{c.preparer}.prepare(from_dir={c.from_dir}){ok}"
            from_dir = self.cfg.resolve_path(c.from_dir)
            if from_dir and not Path(from_dir).exists():
                src += f"  (note: corpus.from_dir {from_dir} does not exist here; set it with --set corpus.from_dir=...)"
        lim = f", drop clips > {c.max_duration_s:g} s" if c.max_duration_s else ""
        deg = f", every clip through '{c.degrade}'" if c.degrade else ""
        return [f"real speech from {src}{lim}{deg}"]

    def stage_prep(self) -> dict:
        c = self.cfg.corpus
        access = self.access.for_stage("prep")
        if c.preparer == "manifest":
            src = Path(self.cfg.resolve_path(c.manifest))
        else:
            src = _deps.prepare_corpus(
                c.preparer, self.out / "data" / "corpus", from_dir=self.cfg.resolve_path(c.from_dir),
                cache_dir=self.cfg.resolve_path(c.cache_dir), options=c.options,
            )
        recs = read_manifest(src)
        kept, dropped = [], 0
        for i, r in enumerate(recs, 1):
            for key in ("domain", "split"):
                if not r.get(key):
                    raise ManifestError(f"{src}:{i}: the recipe needs a '{key}' on every utterance")
            if r["split"] not in SPLITS:
                raise ManifestError(f"{src}:{i}: split must be one of {SPLITS}, got {r['split']!r}")
            if r.get("source", "real") != "real":
                raise ManifestError(f"{src}:{i}: the corpus must be real speech, got source {r['source']!r}")
            if c.max_duration_s is not None and r.get("duration") is not None and r["duration"] > c.max_duration_s:
                dropped += 1
                continue
            kept.append({**r, "source": "real"})
        if not kept:
            raise ManifestError(f"{src}: no utterance left (max_duration_s={c.max_duration_s})")
        from asr_analogy.analogy.plan import resolve_domains

        resolve_domains(self.cfg, domain_counts(kept, "train"))  # the configured domains exist: checked before writing
        if c.degrade:
            kept = self._degrade(kept, c.degrade)
        # prep copies metadata (and with corpus.degrade rewrites the audio of every domain alike); no model reads it
        access._log({"consumer": "prep", "purpose": "partition", "file": str(src), "n": len(kept),
                     "domains": sorted({r["domain"] for r in kept}), "splits": sorted({r["split"] for r in kept}),
                     "sources": ["real"], "target_real_audio": False})
        write_manifest(kept, self.real_manifest, relative=False)
        counts = Counter((r["domain"], r["split"]) for r in kept)
        self._plan = None
        self.echo(f"corpus: {len(kept)} utterances in {len({d for d, _ in counts})} domains"
                  + (f" ({dropped} longer than {c.max_duration_s:g} s dropped)" if dropped else ""))
        return {"source": str(src), "utterances": len(kept), "dropped_long": dropped,
                "counts": {f"{d}/{s}": n for (d, s), n in sorted(counts.items())}}

    def _degrade(self, records: list[dict], spec: str) -> list[dict]:
        """Copies of the real clips passed through channel ``spec`` (seeded by utterance), under data/degraded/."""
        from asr_analogy.io.audio import load_audio, write_wav
        from asr_analogy.speech.tts.channel import apply_channel, parse_channel

        parse_channel(spec)  # a bad spec fails before any audio is written
        out_dir = self.out / "data" / "degraded"
        out = []
        for i, r in enumerate(records):
            uid = str(r.get("id") or Path(r["audio_filepath"]).stem)
            seed = int(hashlib.sha1(f"{r.get('domain')}/{uid}".encode()).hexdigest()[:8], 16)
            path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', uid)}-{i}.wav"
            if not path.is_file():
                write_wav(path, apply_channel(load_audio(r["audio_filepath"]), 16000, spec, seed=seed), 16000)
            out.append({**r, "audio_filepath": str(path.resolve()), "degraded": spec})
        self.echo(f"corpus: {len(out)} clips passed through '{spec}'")
        return out

    # ---- synthesize ----------------------------------------------------------------------------------------
    def describe_synthesize(self) -> list[str]:
        s = self.cfg.synthesis
        voices = ", ".join(s.voices) if s.voices else "backend default"
        chan = f", channel {s.channel}" if s.channel else ""
        return [f"backend {s.backend}, voices {voices}, {s.samples_per_sentence} sample(s)/sentence, "
                f"text of splits {'/'.join(s.splits)}{chan}"]

    def stage_synthesize(self) -> dict:
        s = self.cfg.synthesis
        access = self.access.for_stage("synthesize")
        used = set(self._used_domains())
        texts = [r for r in access.texts(self.real_manifest, consumer="synthesize", splits=s.splits) if r.get("domain") in used]
        if not texts:
            raise ConfigError(f"{self.cfg.source_path}: no text to synthesize in splits {s.splits}")
        # the TTS input: text records (the audio path points at nothing; only the text is read)
        inp = self.out / "data" / "synthesis_input.jsonl"
        with atomic_file(inp) as fh:
            for r in texts:
                fh.write(json.dumps({k: v for k, v in r.items() if k not in ("source", "speaker", "raw_text")},
                                    ensure_ascii=False) + "\n")
        # voices may name their backend ("hibari:heart"); sentences are dealt to voices by a hash of their id
        recs = []
        for b, voice, subset, n in synthesis_calls(s.backend, s.voices, texts, s.samples_per_sentence):
            backend = _deps.register_tts_backend(b)
            slug = "audio" if subset is None else re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{b}_{voice[0]}")
            sub_inp = inp
            if subset is not None:
                sub_inp = self.out / "data" / f"synthesis_input.{slug}.jsonl"
                with atomic_file(sub_inp) as fh:
                    for r in subset:
                        fh.write(json.dumps({k: v for k, v in r.items() if k not in ("source", "speaker", "raw_text")},
                                            ensure_ascii=False) + "\n")
            kwargs = dict(backend=backend, voices=voice,
                          samples_per_sentence=n, seed=s.seed, workers=s.workers, channel=s.channel,
                          cache_dir=self.cfg.resolve_path(s.cache_dir), force=True, **s.options)
            part = read_manifest(_deps.synthesize(sub_inp, self.syn_dir / slug, **kwargs))
            if subset is not None:
                for r in part:
                    r["id"] = f"{slug}/{r.get('id')}"
            recs += part
        missing = [r for r in recs if not r.get("domain") or not r.get("split")]
        if missing:
            raise ManifestError(f"{self.syn_manifest}: synthesized records lost their domain/split fields")
        for r in recs:
            r["source"] = "synthetic"
            r["voice"] = r.get("speaker") or r.get("voice")  # backend:voice, unique across backends
        write_manifest(recs, self.syn_manifest)
        self._plan = None
        voices = Counter(str(r.get("voice")) for r in recs)
        self.echo(f"synthesized {len(recs)} clips from {len(texts)} sentences; voices: {dict(voices)}")
        return {"sentences": len(texts), "clips": len(recs), "voices": dict(voices)}

    # ---- finetune ------------------------------------------------------------------------------------------
    def describe_finetune(self) -> list[str]:
        ft = self.cfg.finetune
        head = (f"lr {ft.learning_rate:g}, {ft.max_steps or ft.num_epochs} {'steps' if ft.max_steps else 'epochs'}, "
                f"batch {ft.batch_size}×{ft.grad_accum}, audio context {ft.audio_context_s or 30} s, "
                f"C: {'source stage then target synthetic' if ft.c_init == 'source' else 'from base'} "
                f"(lr × {ft.target_stage.lr_scale:g})")
        try:
            plan = self.plan()
        except (ManifestError, AsrAnalogyError):
            d = self.cfg.domains
            ens = f"; ensemble pairs by {self.cfg.ensemble.by}" if self.cfg.ensemble.enabled else ""
            return [head, f"jobs per target {', '.join(d.targets)}: A (source synthetic), B (source real), "
                          f"S (source real+synthetic), C (target synthetic), upper bound (target real)"
                          f"{'; A′/B′/C′ per pseudo-target' if self.cfg.lambda_.mode == 'pseudo_target' else ''}{ens}",
                    "(exact job list once the corpus is prepared)"]
        return [head] + [j.describe(plan.jobs) for j in plan.ordered_jobs()]

    def stage_finetune(self) -> dict:
        plan = self.plan()
        access = self.access.for_stage("finetune")
        summary = {}
        jobs = plan.ordered_jobs()
        for i, job in enumerate(jobs, 1):
            self.echo(f"[finetune] {i}/{len(jobs)} {job.describe(plan.jobs)}")
            summary[job.dirname] = self._run_job(job, plan, access)
        return summary

    def _job_fingerprint(self, key: str) -> str:
        done = self.job_dir(key) / "job.json"
        if not done.is_file():
            raise AsrAnalogyError(f"model {self.job_dir(key).name} is not trained yet: run the finetune stage")
        return _read_json(done)["fingerprint"]

    def _run_job(self, job: Job, plan: Plan, access: DataAccess) -> dict:
        """Train one job unless a finished model with the same fingerprint exists.

        The fingerprint covers the job (init, data selection, schedule), the training records themselves (so a
        new TTS voice retrains), every fine-tuning setting, and the fingerprint of the model it starts from.
        """
        import shutil

        ft = self.cfg.finetune
        jdir = self.out / "models" / job.dirname
        done = jdir / "job.json"
        model_dir = jdir / "model"

        def gather(specs, purpose, log):
            recs = []
            for spec in specs:
                recs += access.records(self._manifest_of(spec.source), consumer=job.consumer, purpose=purpose,
                                       domains=spec.domains, splits=[spec.split], voices=spec.voices, log=log)
            return recs

        train, dev = gather(job.train, "train", False), gather(job.dev, "select", False)
        if not train:
            raise ConfigError(f"{job.dirname}: no training utterances for {' + '.join(d.describe() for d in job.train)}")
        init = self.base_dir if job.init == "base" else str(self.model_dir(job.init))
        values = dict(
            model=init, train_manifest=str(jdir / "train.jsonl"), dev_manifest=str(jdir / "dev.jsonl") if dev else None,
            output_dir=str(model_dir), learning_rate=ft.learning_rate * job.lr_scale, batch_size=ft.batch_size,
            grad_accum=ft.grad_accum, warmup_steps=ft.warmup_steps, freeze_encoder=ft.freeze_encoder,
            audio_context_s=ft.audio_context_s, seed=ft.seed, resume=ft.resume,
        )
        if job.max_steps is not None:
            values["max_steps"] = job.max_steps
        elif job.num_epochs is not None:
            values["num_epochs"] = job.num_epochs
        if dev and ft.eval_steps:
            values["eval_steps"] = ft.eval_steps
        values.update(ft.extra)
        fingerprint = _hash({
            "key": job.key, "values": {k: v for k, v in values.items() if k not in ("model", "resume")},
            "init": init if job.init == "base" else self._job_fingerprint(job.init),
            "train": sorted(json.dumps(r, sort_keys=True) for r in train),
            "dev": sorted(json.dumps(r, sort_keys=True) for r in dev),
        })
        if done.is_file():
            info = _read_json(done)
            if info.get("fingerprint") == fingerprint and Path(info["model_dir"]).is_dir():
                self.echo(f"[finetune] {job.dirname} complete, skipped")
                return info
        pending = jdir / "pending.json"
        if jdir.exists() and not (pending.is_file() and _read_json(pending).get("fingerprint") == fingerprint):
            shutil.rmtree(jdir)  # another config's model or checkpoints: never resume from them
        jdir.mkdir(parents=True, exist_ok=True)
        _write_json(pending, {"fingerprint": fingerprint})
        gather(job.train, "train", True)  # the hand-out, logged
        write_manifest(train, jdir / "train.jsonl", relative=False)
        if dev:
            gather(job.dev, "select", True)
            write_manifest(dev, jdir / "dev.jsonl", relative=False)
        t0 = time.time()
        if model_dir.is_dir() and (model_dir / "config.json").is_file():
            final = model_dir  # finished by a run killed before it could write job.json
        else:
            final = _deps.finetune(values)
        info = {"key": job.key, "fingerprint": fingerprint, "role": job.role, "model_dir": str(Path(final).resolve()),
                "init": init, "train_utterances": len(train), "learning_rate": values["learning_rate"],
                "max_steps": values.get("max_steps"), "elapsed_s": round(time.time() - t0, 1),
                "data": [d.describe() for d in job.train]}
        _write_json(done, info)
        return info

    # ---- vectors -------------------------------------------------------------------------------------------
    def describe_vectors(self) -> list[str]:
        e = self.cfg.ensemble
        lines = ["syn2real vector v = θ_B − θ_A per analogy (target and pseudo-targets)"]
        if e.enabled:
            dens = f", density {e.density}" if e.density is not None else ""
            lines.append(f"ensemble: {e.method} over one (A_i, B_i) pair per {e.by}{dens}")
        return lines

    def vector_path(self, vid: str) -> Path:
        return self.out / "vectors" / f"{vid}.safetensors"

    def suite_vectors(self, suite: Suite) -> dict:
        """Ids of the suite's vectors: ``{"syn2real": id, "ensemble": id or None}``."""
        fp = self._job_fingerprint
        pair = self.pair_id(suite.A, suite.B)
        ens = None
        if suite.ensemble:
            e = self.cfg.ensemble
            ens = "ens-" + _hash({"pairs": [(fp(a), fp(b)) for _, a, b in suite.ensemble], "method": e.method,
                                  "density": e.density, "seed": e.seed})
        return {"syn2real": pair, "ensemble": ens}

    def pair_id(self, a: str, b: str) -> str:
        """Id of the vector θ_B − θ_A of two trained jobs (changes when either is retrained)."""
        return "pair-" + _hash([self._job_fingerprint(a), self._job_fingerprint(b)])

    def stage_vectors(self) -> dict:
        from asr_analogy.analogy.vectors import ensemble_vector, load_vector, save_vector, syn2real_vector, vector_stats

        plan = self.plan()
        index_path = self.out / "vectors" / "index.json"
        index = _read_json(index_path) if index_path.is_file() else {}
        e = self.cfg.ensemble
        suites = [s for tp in plan.targets for s in [tp.main, *tp.pseudo]]

        def pair_vector(a: str, b: str) -> tuple[str, dict]:
            vid = self.pair_id(a, b)
            path = self.vector_path(vid)
            if vid in index and path.is_file():
                return vid, load_vector(path)
            v = syn2real_vector(self.model_dir(a), self.model_dir(b))
            save_vector(v, path, {"kind": "syn2real", "A": plan.jobs[a].dirname, "B": plan.jobs[b].dirname})
            index[vid] = {"kind": "syn2real", "A": plan.jobs[a].dirname, "B": plan.jobs[b].dirname,
                          "stats": vector_stats(v)}
            _write_json(index_path, index)
            return vid, v

        for s in suites:
            ids = self.suite_vectors(s)
            main_id, main = pair_vector(s.A, s.B)
            if ids["ensemble"] and not (ids["ensemble"] in index and self.vector_path(ids["ensemble"]).is_file()):
                parts = [(label, *pair_vector(a, b)) for label, a, b in s.ensemble]
                ens = ensemble_vector([v for _, _, v in parts], e.method, e.density, e.seed)
                save_vector(ens, self.vector_path(ids["ensemble"]), {"kind": "ensemble", "method": e.method})
                index[ids["ensemble"]] = {
                    "kind": "ensemble", "method": e.method, "density": e.density, "by": e.by,
                    "members": [{"label": label, "vector": vid} for label, vid, _ in parts],
                    "stats": vector_stats(ens, main),
                    "member_cosines": {label: vector_stats(v, main)["cosine"] for label, _, v in parts},
                }
                _write_json(index_path, index)
        return {"vectors": sorted(index)}

    # ---- select_lambda -------------------------------------------------------------------------------------
    def describe_lambda(self) -> list[str]:
        lam = self.cfg.lambda_
        grid = ", ".join(f"{x:g}" for x in lam.grid)
        if lam.mode == "fixed":
            lines = [f"fixed λ = {lam.value:g}"]
        elif lam.mode == "oracle":
            lines = [f"ORACLE: λ from grid [{grid}] by WER on target real dev (an upper bound on selection)"]
        else:
            pts = ", ".join(lam.pseudo_targets) if lam.pseudo_targets else "the largest source domain"
            lines = [f"pseudo-target: hold out {pts}; λ from grid [{grid}] by WER on its real "
                     f"{'/'.join(lam.select_splits)} audio"
                     + (" (held out of the sources too)" if lam.holdout_from_sources else "")]
        if lam.report_oracle and lam.mode != "oracle":
            lines.append("also report the oracle λ (target real dev), labelled")
        return lines

    def _sweep(self, c_key: str, vid: str, records: list[dict], label: str) -> dict:
        """WER of θ_C + λ·v on ``records`` for every λ of the grid (cached under lambda/sweeps/)."""
        lam = self.cfg.lambda_
        ev = self.cfg.evaluate
        ids = [r.get("id") or r["audio_filepath"] for r in records]
        key = _hash({"C": self._job_fingerprint(c_key), "v": vid, "ids": ids, "grid": lam.grid, "norm": ev.normalizer, "beams": ev.num_beams,
                     "max_new_tokens": ev.max_new_tokens})
        path = self.out / "lambda" / "sweeps" / f"{key}.json"
        if path.is_file():
            return _read_json(path)
        curve = self._decode_curve(self.model_dir(c_key), self.vector_path(vid), records, lam.grid)
        out = {"label": label, "C": self.plan().jobs[c_key].dirname, "vector": vid, "n_utterances": len(records),
               "lambdas": lam.grid, "wer": [c["wer"] for c in curve], "cer": [c["cer"] for c in curve]}
        _write_json(path, out)
        return out

    def _decode_curve(self, c_dir: Path, vector_file: Path, records: list[dict], grid: list[float]) -> list[dict]:
        ev = self.cfg.evaluate
        out = []
        for lam in grid:
            hyps = self.decoder.hyps(c_dir, records, vector_file, lam)
            m = _deps.score(hyps, normalizer=ev.normalizer, bootstrap=0)
            out.append({"lambda": lam, "wer": m["wer"], "cer": m["cer"]})
            self.echo(f"    λ={lam:<5g} WER {100 * m['wer']:.2f} %")
        return out

    def stage_select_lambda(self) -> dict:
        plan = self.plan()
        lam = self.cfg.lambda_
        access = self.access.for_stage("select_lambda")
        summary = {}
        for tp in plan.targets:
            t = tp.target
            result: dict = {"target": t, "mode": lam.mode}
            main_ids = self.suite_vectors(tp.main)
            if lam.mode == "fixed":
                result.update(value=lam.value, value_ensemble=lam.value, how=f"fixed λ = {lam.value:g}")
            if lam.mode == "pseudo_target":
                curves, ens_curves = [], []
                for ps in tp.pseudo:
                    recs = access.records(self.real_manifest, consumer=f"select_lambda/pseudo_target[{ps.target}]",
                                          purpose="decode", domains=[ps.target], splits=lam.select_splits)
                    if not recs:
                        raise ConfigError(f"pseudo-target '{ps.target}' has no real utterances in {lam.select_splits}")
                    ids = self.suite_vectors(ps)
                    self.echo(f"[select_lambda] {t}: pseudo-target {ps.target} ({len(recs)} utterances)")
                    curves.append(self._sweep(ps.C, ids["syn2real"], recs, f"pseudo-target {ps.target}"))
                    if ids["ensemble"]:
                        self.echo(f"[select_lambda] {t}: pseudo-target {ps.target}, ensemble vector")
                        ens_curves.append(self._sweep(ps.C, ids["ensemble"], recs, f"pseudo-target {ps.target} (ensemble)"))
                mc = mean_curve(curves)
                v = choose_lambda(mc["lambdas"], mc["wer"])
                result.update(value=v, curves=curves, mean_curve=mc,
                              how=f"pseudo-target: min WER on real {'/'.join(lam.select_splits)} audio of held-out "
                                  f"source domain(s) {', '.join(p.target for p in tp.pseudo)}")
                if ens_curves:
                    me = mean_curve(ens_curves)
                    result.update(value_ensemble=choose_lambda(me["lambdas"], me["wer"]), ensemble_curves=ens_curves)
                else:
                    result["value_ensemble"] = v
            if lam.mode == "oracle" or lam.report_oracle:
                recs = access.records(self.real_manifest, consumer="select_lambda/oracle", purpose="decode",
                                      domains=[t], splits=["dev"])
                if not recs:
                    raise ConfigError(f"target '{t}' has no real dev utterances for the oracle λ")
                self.echo(f"[select_lambda] {t}: ORACLE sweep on target real dev ({len(recs)} utterances)")
                oc = self._sweep(tp.main.C, main_ids["syn2real"], recs, f"ORACLE target {t} dev")
                ov = choose_lambda(oc["lambdas"], oc["wer"])
                result["oracle"] = {"value": ov, "curve": oc}
                if lam.mode == "oracle":
                    result.update(value=ov, how=f"ORACLE: min WER on target '{t}' real dev (not a valid selection)")
                    if main_ids["ensemble"]:
                        oe = self._sweep(tp.main.C, main_ids["ensemble"], recs, f"ORACLE target {t} dev (ensemble)")
                        result["value_ensemble"] = choose_lambda(oe["lambdas"], oe["wer"])
                    else:
                        result["value_ensemble"] = ov
            _write_json(self.out / "lambda" / f"{t}.json", result)
            summary[t] = {"lambda": result["value"], "lambda_ensemble": result.get("value_ensemble"), "how": result["how"]}
            self.echo(f"[select_lambda] {t}: λ = {result['value']:g} ({result['how']})")
        return summary

    # ---- evaluate ------------------------------------------------------------------------------------------
    def describe_evaluate(self) -> list[str]:
        ev = self.cfg.evaluate
        systems = ["base", "C", "syn2real"]
        if self.cfg.ensemble.enabled:
            systems.append("ensemble")
        if self.cfg.finetune.upper_bound:
            systems.append("upper_bound")
        if self.cfg.lambda_.report_oracle and self.cfg.lambda_.mode != "oracle":
            systems.append("syn2real_oracle")
        curve = "; WER-vs-λ curve on test (reporting)" if ev.lambda_curve else ""
        return [f"systems {', '.join(systems)} on target real {ev.test_split}; normalizer {ev.normalizer}, "
                f"bootstrap {ev.bootstrap}{curve}"]

    def systems_for(self, tp) -> list[dict]:
        """The systems scored on a target: name, model (job key or "base"), vector id and λ."""
        sel = _read_json(self.out / "lambda" / f"{tp.target}.json")
        ids = self.suite_vectors(tp.main)
        out = [{"system": "base", "model": "base"}, {"system": "C", "model": tp.main.C}]
        out.append({"system": "syn2real", "model": tp.main.C, "vector": ids["syn2real"], "lambda": sel["value"]})
        if ids["ensemble"]:
            out.append({"system": "ensemble", "model": tp.main.C, "vector": ids["ensemble"],
                        "lambda": sel.get("value_ensemble", sel["value"])})
        if tp.main.UB:
            out.append({"system": "upper_bound", "model": tp.main.UB})
        if "oracle" in sel and self.cfg.lambda_.mode != "oracle":
            out.append({"system": "syn2real_oracle", "model": tp.main.C, "vector": ids["syn2real"],
                        "lambda": sel["oracle"]["value"]})
        return out

    def stage_evaluate(self) -> dict:
        plan = self.plan()
        ev = self.cfg.evaluate
        access = self.access.for_stage("evaluate")
        summary = {}
        for tp in plan.targets:
            t = tp.target
            edir = self.out / "eval" / t
            recs = access.records(self.real_manifest, consumer="evaluate", purpose="decode", domains=[t],
                                  splits=[ev.test_split])
            if not recs:
                raise ConfigError(f"target '{t}' has no real {ev.test_split} utterances")
            summary[t] = {}
            for sysd in self.systems_for(tp):
                name = sysd["system"]
                model_fp = self.base_dir if sysd["model"] == "base" else self._job_fingerprint(sysd["model"])
                spec = {**sysd, "model_fingerprint": model_fp, "normalizer": ev.normalizer, "bootstrap": ev.bootstrap, "seed": ev.seed,
                        "beams": ev.num_beams, "max_new_tokens": ev.max_new_tokens, "n": len(recs)}
                mpath = edir / "metrics" / f"{name}.json"
                if mpath.is_file() and _read_json(mpath).get("spec") == spec:
                    summary[t][name] = _read_json(mpath)["wer"]
                    continue
                self.echo(f"[evaluate] {t}: {SYSTEM_LABELS[name]}" + (f" (λ={sysd['lambda']:g})" if "lambda" in sysd else ""))
                model_dir = self.base_dir if sysd["model"] == "base" else str(self.model_dir(sysd["model"]))
                vfile = self.vector_path(sysd["vector"]) if "vector" in sysd else None
                hyps = self.decoder.hyps(model_dir, recs, vfile, sysd.get("lambda", 0.0))
                write_manifest(hyps, edir / "hyps" / f"{name}.jsonl", relative=False)
                m = _deps.score(hyps, normalizer=ev.normalizer, bootstrap=ev.bootstrap, seed=ev.seed)
                m = {**m, "spec": spec, "system": name, "label": SYSTEM_LABELS[name], "target": t}
                _write_json(mpath, m)
                summary[t][name] = m["wer"]
            if ev.lambda_curve:
                ids = self.suite_vectors(tp.main)
                cpath = edir / "lambda_curve.json"
                spec = {"C": self._job_fingerprint(tp.main.C), "v": ids["syn2real"], "grid": self.cfg.lambda_.grid, "n": len(recs),
                        "normalizer": ev.normalizer, "beams": ev.num_beams, "max_new_tokens": ev.max_new_tokens}
                if not (cpath.is_file() and _read_json(cpath).get("spec") == spec):
                    self.echo(f"[evaluate] {t}: WER vs λ on test (for the plot; the selection never sees it)")
                    curve = self._decode_curve(self.model_dir(tp.main.C), self.vector_path(ids["syn2real"]), recs,
                                               self.cfg.lambda_.grid)
                    _write_json(cpath, {"spec": spec, "lambdas": [c["lambda"] for c in curve],
                                        "wer": [c["wer"] for c in curve], "cer": [c["cer"] for c in curve]})
            if ev.export_models:
                self._export_models(tp)
        return summary

    def _export_models(self, tp) -> None:
        """final/<target>/{syn2real,ensemble}/: the adapted models as plain model directories.

        θ_C + λ·(θ_B − θ_A) streams through the merge core (``asr_analogy.merge.analogy_merge``); an ensemble
        made with a random DARE mask is written from the very vector that was evaluated.
        """
        from asr_analogy.analogy.vectors import load_vector, save_analogy_model
        from asr_analogy.merge import analogy_merge

        sel = _read_json(self.out / "lambda" / f"{tp.target}.json")
        ids = self.suite_vectors(tp.main)
        e = self.cfg.ensemble
        todo = [("syn2real", [(tp.main.A, tp.main.B)], sel["value"], "task_arithmetic", None, ids["syn2real"])]
        if ids["ensemble"]:
            todo.append(("ensemble", [(a, b) for _, a, b in tp.main.ensemble], sel.get("value_ensemble", sel["value"]),
                         e.method, e.density, ids["ensemble"]))
        for name, pairs, lam, method, density, vid in todo:
            out = self.out / "final" / tp.target / name
            spec = {"C": self._job_fingerprint(tp.main.C), "vector": vid, "lambda": lam, "method": method, "density": density}
            marker = out / "analogy.json"
            if marker.is_file() and _read_json(marker).get("spec") == spec:
                continue
            c_dir = self.model_dir(tp.main.C)
            if method.startswith("dare"):
                save_analogy_model(c_dir, load_vector(self.vector_path(vid)), lam, out, force=True)
            else:
                analogy_merge(c_dir, [(self.model_dir(a), self.model_dir(b)) for a, b in pairs], lam, out,
                              method=method, density=density, force=True, progress=False)
            _write_json(marker, {"spec": spec, "target_synthetic": str(c_dir), "lambda": lam,
                                 "pairs": [[str(self.model_dir(a)), str(self.model_dir(b))] for a, b in pairs]})
            self.echo(f"[evaluate] {tp.target}: wrote {out} (θ_C + {lam:g}·{name} vector)")

    # ---- report --------------------------------------------------------------------------------------------
    def describe_report(self) -> list[str]:
        return [f"{self.out}/RESULTS.md, results.json, plots/wer_vs_lambda_<target>.png, plots/systems.png"]

    def stage_report(self) -> dict:
        from asr_analogy.analogy.report import collect_results, write_report

        results = collect_results(self)
        path = write_report(results, self.out)
        self.echo(f"wrote {path}")
        return {"results": str(self.out / "results.json"), "report": str(path)}

    # ---- entry points --------------------------------------------------------------------------------------
    def dry_run(self, from_stage=None, stop_stage=None) -> str:
        cfg = self.cfg
        lines = [f"config {cfg.source_path}" + (f" (variant {cfg.variant})" if cfg.variant else "") + ": valid",
                 f"outputs: {self.out}/", f"base model: {cfg.base_model}",
                 f"targets: {', '.join(cfg.domains.targets)}; sources: "
                 + (", ".join(cfg.domains.sources) if cfg.domains.sources else f"all other corpus domains ({cfg.domains.source_pool})")
                 + (f"; excluded: {', '.join(cfg.domains.exclude)}" if cfg.domains.exclude else ""),
                 "planned stages:"]
        for i, (stage, action) in enumerate(self.runner.plan(from_stage, stop_stage), 1):
            lines.append(f"  {i}. {stage.name:<14} [{action}] {stage.doc}")
            for d in stage.describe():
                lines.append(f"       {d}")
        return "\n".join(lines)

    def resolved_config(self) -> dict:
        """The config as run: variant and overrides applied, relative paths made absolute."""
        import yaml  # noqa: F401  (the caller writes it as YAML)

        data = self.cfg.model_dump(mode="json", by_alias=True, exclude={"variants"})
        for section, key in (("corpus", "manifest"), ("corpus", "from_dir"), ("corpus", "cache_dir"),
                             ("synthesis", "cache_dir")):
            data[section][key] = self.cfg.resolve_path(data[section][key])
        if not self.cfg.base_model.startswith("bundled:") and self.cfg.source_path:
            local = Path(self.cfg.source_path).parent / self.cfg.base_model
            if local.is_dir():
                data["base_model"] = str(local.resolve())
        data["exp_dir"] = str(Path(self.cfg.exp_dir).resolve())
        return data

    def run(self, from_stage=None, stop_stage=None) -> list[tuple[str, str]]:
        import yaml

        self.runner.check(from_stage, stop_stage)  # stage names and order checked before anything is written
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.out / "recipe.yaml") as fh:
            fh.write(f"# as run from {self.cfg.source_path}" + (f", variant {self.cfg.variant}" if self.cfg.variant else "") + "\n")
            yaml.safe_dump(self.resolved_config(), fh, sort_keys=False, allow_unicode=True)
        return self.runner.run(from_stage, stop_stage, echo=self.echo)


def run(
    config: str | os.PathLike | RecipeConfig,
    *,
    variant: str | None = None,
    overrides: dict | None = None,
    from_stage: str | None = None,
    stop_stage: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> Syn2RealRecipe:
    """Run (or with ``dry_run`` only validate and print) a syn2real recipe; returns the recipe object.

    With ``dry_run`` nothing is written and no model or corpus is touched.
    """
    cfg = config if isinstance(config, RecipeConfig) else load_recipe_config(config, variant, overrides)
    recipe = Syn2RealRecipe(cfg, echo)
    if dry_run:
        echo(recipe.dry_run(from_stage, stop_stage))
        return recipe
    recipe.run(from_stage, stop_stage)
    return recipe


def default_recipe_path() -> Path:
    """``recipes/ivr_syn2real/config.yaml`` of the source tree (the demo's recipe)."""
    path = Path(__file__).resolve().parents[2] / "recipes" / "ivr_syn2real" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"the IVR recipe {path} is missing (the demo runs from a source checkout)")
    return path


def demo(
    *,
    variant: str = "demo",
    target: str | None = None,
    exp_dir: str | None = None,
    overrides: dict | None = None,
    from_stage: str | None = None,
    stop_stage: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> Syn2RealRecipe:
    """The IVR recipe's ``demo`` variant (one target domain, offline defaults; ``variant`` picks another one of
    the recipe's variants, e.g. ``demo_noisy``); prints the result table."""
    from asr_analogy.analogy.config import deep_merge

    over = dict(overrides or {})
    if target:
        over = deep_merge(over, {"domains": {"targets": [target]}})
    if exp_dir:
        over = deep_merge(over, {"exp_dir": exp_dir})
    t0 = time.time()
    recipe = run(default_recipe_path(), variant=variant, overrides=over or None, from_stage=from_stage,
                 stop_stage=stop_stage, dry_run=dry_run, echo=echo)
    if not dry_run and (recipe.out / "RESULTS.md").is_file():
        from asr_analogy.analogy.report import result_table

        echo("")
        echo(result_table(_read_json(recipe.out / "results.json")))
        echo(f"\ndemo finished in {(time.time() - t0) / 60:.1f} min; full report: {recipe.out / 'RESULTS.md'}")
    return recipe
