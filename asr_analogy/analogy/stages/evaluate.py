"""Stage ``evaluate``: every system of ``asr_analogy.analogy.systems`` on each target's real test split.

Per target: ``eval/<target>/hyps/<system>.jsonl`` (one line per scored utterance, with ``id``, ``text`` and
``hypothesis``), ``eval/<target>/metrics/<system>.json`` (WER and CER as fractions, 95 % bootstrap interval),
``eval/<target>/results.json`` (every number of the target's table, with each system's paired difference versus
C and versus base, recomputable from the hyps files), the WER-vs-λ curve on test (for the plot only; the selection never sees it)
and the exported models (``asr_analogy.analogy.export``). Each file records its spec and is reused while the spec
holds.
"""

from __future__ import annotations

from asr_analogy.errors import ConfigError
from asr_analogy.io.manifest import write_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.cache import cached_result, write_json
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.export import export_models, score_deployed
from asr_analogy.analogy.plan import TargetPlan
from asr_analogy.analogy.report import hyps_path, target_results
from asr_analogy.analogy.stages.base import Stage
from asr_analogy.analogy.systems import labels, planned, systems_for
from asr_analogy.ops.param_groups import describe_scale


def describe(ctx: RecipeContext) -> list[str]:
    ev = ctx.cfg.evaluate
    systems = planned(ctx.cfg)
    curve = "; WER-vs-λ curve on test (reporting)" if ev.lambda_curve else ""
    where = (f"all target real utterances (upper bound: {ev.test_split} only)" if ev.all_target_utterances
             else f"target real {ev.test_split}")
    return [f"systems {', '.join(systems)} on {where}; normalizer {ev.normalizer}, bootstrap {ev.bootstrap}{curve}"]


def target_systems(ctx: RecipeContext, target_plan: TargetPlan) -> list[dict]:
    """The systems scored on a target: name, model (job key or "base"), vector id and λ."""
    return systems_for(ctx.cfg, target_plan.main, ctx.selection(target_plan.target),
                       ctx.suite_vectors(target_plan.main))


def _score_system(ctx: RecipeContext, target: str, system: dict, records: list[dict]) -> dict:
    """``eval/<target>/metrics/<system>.json``, decoding and scoring unless it holds the same spec."""
    ev = ctx.cfg.evaluate
    name = system["system"]
    model_fingerprint = ctx.base_dir if system["model"] == "base" else ctx.job_fingerprint(system["model"])
    spec = {**system, "model_fingerprint": model_fingerprint, "normalizer": ev.normalizer, "bootstrap": ev.bootstrap,
            "seed": ev.seed, **ev.decoding(), "n": len(records)}

    label = labels(ctx.cfg)[name]

    def compute() -> dict:
        ctx.echo(f"[evaluate] {target}: {label}"
                 + (f" (λ {describe_scale(system['lambda'])})" if "lambda" in system else ""))
        model_dir = ctx.base_dir if system["model"] == "base" else str(ctx.model_dir(system["model"]))
        vector_file = ctx.vector_path(system["vector"]) if "vector" in system else None
        hyps = ctx.decoder.hyps(model_dir, records, vector_file, system.get("lambda", 0.0))
        write_manifest(hyps, hyps_path(ctx.out, target, name), relative=False)
        metrics = _deps.score(hyps, normalizer=ev.normalizer, bootstrap=ev.bootstrap, seed=ev.seed)
        return {**metrics, "system": name, "label": label, "target": target}

    return cached_result(ctx.out / "eval" / target / "metrics" / f"{name}.json", spec, compute)


def _test_curve(ctx: RecipeContext, target_plan: TargetPlan, records: list[dict]) -> None:
    """``eval/<target>/lambda_curve.json``: WER and CER of θ_C + λ·v over the grid on target test."""
    ev = ctx.cfg.evaluate
    suite = target_plan.main
    vector_id = ctx.suite_vectors(suite)["syn2real"]
    grid = ctx.cfg.lambda_.grid
    spec = {"C": ctx.job_fingerprint(suite.C), "v": vector_id, "grid": grid, "n": len(records),
            "normalizer": ev.normalizer, **ev.decoding()}

    def compute() -> dict:
        ctx.echo(f"[evaluate] {target_plan.target}: WER vs λ on test (for the plot; the selection never sees it)")
        return ctx.decoder.curve(ctx.model_dir(suite.C), ctx.vector_path(vector_id), records, grid, ctx.echo)

    cached_result(ctx.out / "eval" / target_plan.target / "lambda_curve.json", spec, compute)


def run(ctx: RecipeContext) -> dict:
    ev = ctx.cfg.evaluate
    access = ctx.access.for_stage("evaluate")
    summary = {}
    for target_plan in ctx.plan().targets:
        target = target_plan.target
        splits = ["train", "dev", "test"] if ev.all_target_utterances else [ev.test_split]
        recs = access.records(ctx.real_manifest, consumer="evaluate", purpose="decode", domains=[target],
                              splits=splits)
        if not any(r.get("split") == ev.test_split for r in recs):
            raise ConfigError(f"target '{target}' has no real {ev.test_split} utterances")
        recs = [r if r.get("id") else {**r, "id": str(r["audio_filepath"])} for r in recs]  # pairs utterances
        held_out = [r for r in recs if r.get("split") == ev.test_split]  # the upper bound trained on the rest
        summary[target] = {s["system"]: _score_system(ctx, target, s, held_out if s["system"] == "upper_bound"
                                                      else recs)["wer"]
                           for s in target_systems(ctx, target_plan)}
        if ev.lambda_curve:
            _test_curve(ctx, target_plan, held_out)
        if ev.export_models:
            export_models(ctx, target_plan)
        if ev.deployed:
            summary[target].update(score_deployed(ctx, target_plan, recs))
        write_json(ctx.out / "eval" / target / "results.json", target_results(ctx, target_plan))
    return summary


STAGE = Stage("evaluate", run, inputs=("evaluate",),
              outputs=("eval/<target>/hyps/", "eval/<target>/metrics/", "eval/<target>/results.json",
                       "eval/<target>/lambda_curve.json",
                       "final/<target>/"),
              describe=describe, doc="all systems on target real test")
