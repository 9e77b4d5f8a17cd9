"""``run`` and ``demo``: the syn2real recipe."""

from __future__ import annotations

import click

from asr_analogy.cli.group import main


def _recipe_sets(sets: tuple[str, ...]) -> dict | None:
    from asr_analogy.io.yaml_file import parse_overrides

    return parse_overrides(sets) or None


_STAGE_HELP = "prep, synthesize, finetune, vectors, select_lambda, evaluate, report"


@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--variant", default=None, help="A named variant of the config (its `variants:` section).")
@click.option("--from-stage", default=None, help=f"Rerun from this stage even if complete ({_STAGE_HELP}).")
@click.option("--stop-stage", default=None, help="Stop after this stage.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. finetune.max_steps=20.")
@click.option("--dry-run", is_flag=True, help="Validate the config and print the planned stages; write nothing.")
def run_cmd(config, variant, from_stage, stop_stage, sets, dry_run):
    """Run a syn2real recipe (every target of CONFIG); complete stages are skipped."""
    from asr_analogy.analogy.recipe import run

    run(config, variant=variant, overrides=_recipe_sets(sets), from_stage=from_stage, stop_stage=stop_stage,
        dry_run=dry_run, echo=click.echo)


@main.command("demo")
@click.option("--variant", default="demo", show_default=True,
              help="Variant of recipes/ivr_syn2real/config.yaml to run (demo_noisy: real speech in noise).")
@click.option("--target", default=None, help="Target domain (default: the demo variant's, voicemail).")
@click.option("--exp-dir", default=None, help="Where exp/<name>/ goes (default: exp).")
@click.option("--from-stage", default=None, help=f"Rerun from this stage even if complete ({_STAGE_HELP}).")
@click.option("--stop-stage", default=None, help="Stop after this stage.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--dry-run", is_flag=True, help="Validate and print the planned stages; write nothing.")
def demo_cmd(variant, target, exp_dir, from_stage, stop_stage, sets, dry_run):
    """The offline syn2real demo: Whisper tiny.en, the Debian IVR prompts, one target domain."""
    from asr_analogy.analogy.recipe import demo

    demo(variant=variant, target=target, exp_dir=exp_dir, overrides=_recipe_sets(sets), from_stage=from_stage,
         stop_stage=stop_stage, dry_run=dry_run, echo=click.echo)
