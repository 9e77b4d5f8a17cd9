"""Stage ``report``: ``RESULTS.md``, ``results.json`` and the plots (``asr_analogy.analogy.report``)."""

from __future__ import annotations

from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.stages.base import Stage, read_marker


def describe(ctx: RecipeContext) -> list[str]:
    return [f"{ctx.out}/RESULTS.md, results.json, plots/wer_vs_lambda_<target>.png, plots/systems.png"]


def stage_seconds(ctx: RecipeContext) -> dict:
    """Wall time (s) of every stage with a completion marker, in stage order."""
    from asr_analogy.analogy.stages import STAGE_NAMES  # the list holds this module: imported when run

    markers = {name: read_marker(ctx.out, name) for name in STAGE_NAMES}
    return {name: marker.get("elapsed_s") for name, marker in markers.items() if marker}


def run(ctx: RecipeContext) -> dict:
    from asr_analogy.analogy.report import collect_results, write_report

    path = write_report(collect_results(ctx, stage_seconds(ctx)), ctx.out)
    ctx.echo(f"wrote {path}")
    return {"results": str(ctx.out / "results.json"), "report": str(path)}


STAGE = Stage("report", run, outputs=("RESULTS.md", "results.json", "plots/"), describe=describe,
              doc="RESULTS.md, plots")
