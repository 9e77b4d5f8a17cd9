"""``final/<target>/{syn2real,ensemble}/``: the adapted models of a target as plain model directories.

Each is θ_C + λ·v streamed through the merge core from the very vector file that was evaluated
(``vectors/<id>.safetensors``), exactly as ``asr-analogy apply-vector C VECTOR OUT --scale λ --allow-other-base``
writes it. Each directory's ``analogy.json`` records its spec, so an unchanged model is not written again.

With ``evaluate.deployed`` (``float32``, ``float16`` or ``int8``) each is also exported to CTranslate2 at that
weight type (``final/<target>/<name>-ct2-<type>/``, what faster-whisper loads) and scored in that deployed form:
rows ``"<name> (CT2 <type>)"``, hyps and metrics under ``eval/<target>/`` as ``<name>_ct2_<type>``.
"""

from __future__ import annotations

from asr_analogy.io.manifest import write_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.cache import cached_result, read_json
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.plan import TargetPlan


def export_models(ctx: RecipeContext, target_plan: TargetPlan) -> None:
    """Write (or keep, when unchanged) the syn2real model and the ensemble model of one target."""
    suite = target_plan.main
    selection = ctx.selection(target_plan.target)
    vector_ids = ctx.suite_vectors(suite)
    e = ctx.cfg.ensemble
    todo = [("syn2real", [(suite.A, suite.B)], selection["value"], "task_arithmetic", None, vector_ids["syn2real"])]
    if vector_ids["ensemble"]:
        todo.append(("ensemble", [(a, b) for _, a, b in suite.ensemble],
                     selection.get("value_ensemble", selection["value"]), e.method, e.density, vector_ids["ensemble"]))
    for name, pairs, lam, method, density, vector_id in todo:
        _export_one(ctx, target_plan, name, pairs, lam, method, density, vector_id)


def _export_one(ctx: RecipeContext, target_plan: TargetPlan, name: str, pairs: list[tuple[str, str]], lam: float,
                method: str, density: float | None, vector_id: str) -> dict:
    """``final/<target>/<name>/``: θ_C + λ·combine(θ_B_i − θ_A_i) over ``pairs`` (job keys), by ``method``."""
    suite = target_plan.main
    out = ctx.out / "final" / target_plan.target / name
    spec = {"C": ctx.job_fingerprint(suite.C), "vector": vector_id, "lambda": lam, "method": method,
            "density": density}

    def write_model() -> dict:
        from asr_analogy.analogy.vectors import save_analogy_model

        c_dir = ctx.model_dir(suite.C)
        card = _card(ctx, target_plan.target, name, pairs, lam, method, density)
        save_analogy_model(c_dir, ctx.vector_path(vector_id), lam, out, force=True, card=card)
        ctx.echo(f"[evaluate] {target_plan.target}: wrote {out} (θ_C + {lam:g}·{name} vector)")
        return {"target_synthetic": str(c_dir), "lambda": lam,
                "pairs": [[str(ctx.model_dir(a)), str(ctx.model_dir(b))] for a, b in pairs]}

    return cached_result(out / "analogy.json", spec, write_model)


def score_deployed(ctx: RecipeContext, target_plan: TargetPlan, records: list[dict]) -> dict[str, float]:
    """``{"<name> (CT2 <type>)": WER (fraction)}`` of the exported models of a target, each exported to
    CTranslate2 at ``evaluate.deployed`` and decoded there on ``records``; cached like the other systems."""
    from asr_analogy.analogy.report import hyps_path

    ev, target = ctx.cfg.evaluate, target_plan.target
    rows = {}
    for name in ("syn2real", "ensemble"):
        model_dir = ctx.out / "final" / target / name
        if not (model_dir / "analogy.json").is_file():
            continue
        system, key = f"{name} (CT2 {ev.deployed})", f"{name}_ct2_{ev.deployed}"
        spec = {"model": read_json(model_dir / "analogy.json").get("spec"), "quantization": ev.deployed,
                "normalizer": ev.normalizer, "bootstrap": ev.bootstrap, "seed": ev.seed, **ev.decoding(),
                "n": len(records)}

        def compute(model_dir=model_dir, name=name, system=system, key=key) -> dict:
            ctx.echo(f"[evaluate] {target}: {system}")
            ct2_dir = _deps.export_ct2(model_dir, model_dir.with_name(f"{name}-ct2-{ev.deployed}"), ev.deployed)
            hyps = _deps.transcribe(str(ct2_dir), records, batch_size=ev.batch_size, num_beams=ev.num_beams,
                                    device=ctx.cfg.device, max_new_tokens=ev.max_new_tokens, engine="ctranslate2",
                                    repetition_guard=ev.repetition_guard)
            write_manifest(hyps, hyps_path(ctx.out, target, key), relative=False)
            metrics = _deps.score(hyps, normalizer=ev.normalizer, bootstrap=ev.bootstrap, seed=ev.seed)
            return {**metrics, "system": system, "label": system, "target": target}

        rows[system] = cached_result(ctx.out / "eval" / target / "metrics" / f"{key}.json", spec, compute)["wer"]
    return rows

def _card(ctx: RecipeContext, target: str, name: str, pairs: list[tuple[str, str]], lam: float, method: str,
          density: float | None) -> dict:
    """What the model card of an exported model adds: the analogy, λ and how it was chosen, and the WER of the
    chosen λ on the sets it was chosen on (from ``lambda/<target>.json``)."""
    selection = ctx.selection(target)
    combine = f"`{method}`" + (f" (density {density:g})" if density is not None else "")
    lines = [f"Synthetic2Real analogy ({name}) for target domain `{target}`: θ_D = θ_C + λ·combine(θ_B − θ_A), "
             f"combine = {combine}, λ = {lam:g} ({selection.get('how', 'chosen by the recipe')}).", ""]
    lines += [f"- pair {i + 1}: A `{ctx.model_dir(a)}`, B `{ctx.model_dir(b)}`" for i, (a, b) in enumerate(pairs)]
    rows = []
    for label, curve in (("pseudo-target dev (mean)", selection.get("mean_curve")),
                         ("target real dev (oracle)", (selection.get("oracle") or {}).get("curve"))):
        if curve and lam in curve.get("lambdas", []):
            rows.append({"set": label, "λ": lam, "WER (%)": round(100 * curve["wer"][curve["lambdas"].index(lam)], 2)})
    return {"note": "\n".join(lines), "wer": rows or None, "tags": ["syn2real"]}
