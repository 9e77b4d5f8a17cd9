"""Stage ``finetune``: every job of the plan (A, B, S, C, upper bound, ensemble and pseudo-target models).

A job is trained unless ``models/<job>/job.json`` records the same fingerprint (and its model is there). The
fingerprint covers the job (init, data selection, schedule), the training records themselves (so a new TTS
voice retrains), every fine-tuning setting, and the fingerprint of the model it starts from. A killed job
resumes from its checkpoints only when ``pending.json`` holds the same fingerprint.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from asr_analogy.errors import AsrAnalogyError, ConfigError, ManifestError
from asr_analogy.io.manifest import write_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.access import DataAccess
from asr_analogy.analogy.cache import short_hash, stored_result, write_json
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.plan import DataSpec, Job
from asr_analogy.analogy.stages.base import Stage


def describe(ctx: RecipeContext) -> list[str]:
    ft = ctx.cfg.finetune
    head = (f"lr {ft.learning_rate:g}, {ft.max_steps or ft.num_epochs} {'steps' if ft.max_steps else 'epochs'}, "
            f"batch {ft.batch_size}×{ft.grad_accum}, audio context {ft.audio_context_s or 30} s, "
            f"C: {'source stage then target synthetic' if ft.c_init == 'source' else 'from base'} "
            f"(lr × {ft.target_stage.lr_scale:g})"
            + (f"; {_baselines_line(ft)}" if _baselines_line(ft) else "")
            + (f"; seed {ft.seed}" if ft.seeds is None else f"; seeds {', '.join(map(str, ft.seeds))}"))
    try:
        plan = ctx.plan()
    except (ManifestError, AsrAnalogyError):
        d = ctx.cfg.domains
        ens = f"; ensemble pairs by {ctx.cfg.ensemble.by}" if ctx.cfg.ensemble.enabled else ""
        return [head, f"jobs per target {', '.join(d.targets)}: A (source synthetic), B (source real), "
                      f"S (source real+synthetic), C (target synthetic), upper bound (target real)"
                      f"{'; A′/B′/C′ per pseudo-target' if ctx.cfg.lambda_.mode == 'pseudo_target' else ''}{ens}",
                "(exact job list once the corpus is prepared)"]
    return [head] + [j.describe(plan.jobs) for j in plan.ordered_jobs()]


def _baselines_line(ft) -> str:
    extra = [b for b in ft.c_variants if b != ft.primary_c]
    return (f"baselines beside C: {', '.join('C_' + b for b in extra)} (C_tts: as many steps on the target text as C; "
            "C_multi: as many steps as both stages of C_paper)") if extra else ""


def run(ctx: RecipeContext) -> dict:
    plan = ctx.plan()
    access = ctx.access.for_stage("finetune")
    summary = {}
    jobs = plan.ordered_jobs()
    for i, job in enumerate(jobs, 1):
        ctx.echo(f"[finetune] {i}/{len(jobs)} {job.describe(plan.jobs)}")
        summary[job.dirname] = run_job(ctx, job, access)
    return summary


def _gather(ctx: RecipeContext, access: DataAccess, job: Job, specs: tuple[DataSpec, ...], purpose: str,
            log: bool) -> list[dict]:
    recs = []
    for spec in specs:
        recs += access.records(ctx.manifest_of(spec.source), consumer=job.consumer, purpose=purpose,
                               domains=spec.domains, splits=[spec.split], voices=spec.voices, log=log)
    return recs


def _trainer_values(ctx: RecipeContext, job: Job, job_dir: Path, init: str, has_dev: bool) -> dict:
    """The ``FinetuneConfig`` values of one job."""
    ft = ctx.cfg.finetune
    values = dict(
        model=init, train_manifest=str(job_dir / "train.jsonl"),
        dev_manifest=str(job_dir / "dev.jsonl") if has_dev else None, output_dir=str(job_dir / "model"),
        learning_rate=ft.learning_rate * job.lr_scale, batch_size=ft.batch_size, grad_accum=ft.grad_accum,
        warmup_steps=ft.warmup_steps, freeze_encoder=ft.freeze_encoder, audio_context_s=ft.audio_context_s,
        seed=ft.seed, resume=ft.resume,
    )
    if job.max_steps is not None:
        values["max_steps"] = job.max_steps
    elif job.num_epochs is not None:
        values["num_epochs"] = job.num_epochs
    if has_dev and ft.eval_steps:
        values["eval_steps"] = ft.eval_steps
    values.update(ft.extra)
    return values


def run_job(ctx: RecipeContext, job: Job, access: DataAccess) -> dict:
    """Train one job unless a finished model with the same fingerprint exists; returns its ``job.json``."""
    job_dir = ctx.out / "models" / job.dirname
    done = job_dir / "job.json"
    train = _gather(ctx, access, job, job.train, "train", False)
    dev = _gather(ctx, access, job, job.dev, "select", False)
    if not train:
        raise ConfigError(f"{job.dirname}: no training utterances for {' + '.join(d.describe() for d in job.train)}")
    init = ctx.base_dir if job.init == "base" else str(ctx.model_dir(job.init))
    values = _trainer_values(ctx, job, job_dir, init, bool(dev))
    fingerprint = short_hash({
        "key": job.key, "values": {k: v for k, v in values.items() if k not in ("model", "resume")},
        "init": init if job.init == "base" else ctx.job_fingerprint(job.init),
        "train": sorted(json.dumps(r, sort_keys=True) for r in train),
        "dev": sorted(json.dumps(r, sort_keys=True) for r in dev),
    })
    info = stored_result(done, fingerprint, key="fingerprint")
    if info is not None and Path(info["model_dir"]).is_dir():
        ctx.echo(f"[finetune] {job.dirname} complete, skipped")
        return info
    pending = job_dir / "pending.json"
    if job_dir.exists() and stored_result(pending, fingerprint, key="fingerprint") is None:
        shutil.rmtree(job_dir)  # another config's model or checkpoints: never resume from them
    job_dir.mkdir(parents=True, exist_ok=True)
    write_json(pending, {"fingerprint": fingerprint})
    _gather(ctx, access, job, job.train, "train", True)  # the hand-out, logged
    write_manifest(train, job_dir / "train.jsonl", relative=False)
    if dev:
        _gather(ctx, access, job, job.dev, "select", True)
        write_manifest(dev, job_dir / "dev.jsonl", relative=False)
    t0 = time.time()
    model_dir = job_dir / "model"
    if model_dir.is_dir() and (model_dir / "config.json").is_file():
        final = model_dir  # finished by a run killed before it could write job.json
    else:
        final = _deps.finetune(values)
    info = {"key": job.key, "fingerprint": fingerprint, "role": job.role, "model_dir": str(Path(final).resolve()),
            "init": init, "train_utterances": len(train), "learning_rate": values["learning_rate"],
            "max_steps": values.get("max_steps"), "elapsed_s": round(time.time() - t0, 1),
            "data": [d.describe() for d in job.train]}
    write_json(done, info)
    return info


STAGE = Stage("finetune", run, inputs=("base_model", "finetune", "ensemble", "lambda", "domains"),
              outputs=("models/<role>-<key>/",), describe=describe,
              doc="A, B, S, C, upper bound (+ pseudo-target and ensemble models)")
