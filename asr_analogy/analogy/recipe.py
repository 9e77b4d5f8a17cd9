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

The stages are the modules of ``asr_analogy.analogy.stages``; the systems evaluated on each target's real test
split are listed in ``asr_analogy.analogy.systems``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from asr_analogy.errors import ConfigError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.yaml_file import deep_merge

from asr_analogy.analogy.cache import read_json
from asr_analogy.analogy.config import RecipeConfig, load_recipe_config
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.stages import STAGES, StageRunner

SHARED_STAGES = ("prep", "synthesize")
"""With ``finetune.seeds``, these run once for all seeds; the later stages once per seed."""


class Syn2RealRecipe(RecipeContext):
    """One experiment: the shared context of its stages, and the runner that runs them in order."""

    def __init__(self, cfg: RecipeConfig, echo: Callable[[str], None] = print, data_from: RecipeContext | None = None):
        super().__init__(cfg, echo)
        self.runner = StageRunner(self.out, STAGES, cfg.section_hash, context=self)
        if data_from is not None:  # one seed of a run over seeds: the shared corpus and TTS audio
            self.real_manifest, self.syn_dir, self.syn_manifest = (
                data_from.real_manifest, data_from.syn_dir, data_from.syn_manifest)
            self.seeded_runner = StageRunner(self.out, [st for st in STAGES if st.name not in SHARED_STAGES],
                                             cfg.section_hash, context=self)

    def dry_run(self, from_stage=None, stop_stage=None) -> str:
        """The config summary and the planned stages, each with what it would do. Raises ``ConfigError`` for a
        local input that does not exist (the base model folder, the corpus manifest)."""
        cfg = self.cfg
        _check_local_inputs(cfg)
        lines = [f"config {cfg.source_path}" + (f" (variant {cfg.variant})" if cfg.variant else "") + ": valid",
                 f"outputs: {self.out}/", f"base model: {cfg.base_model}",
                 f"targets: {', '.join(cfg.domains.targets)}; sources: "
                 + (", ".join(cfg.domains.sources) if cfg.domains.sources else f"all other corpus domains ({cfg.domains.source_pool})")
                 + (f"; excluded: {', '.join(cfg.domains.exclude)}" if cfg.domains.exclude else ""),
                 *([f"seeds: {', '.join(map(str, cfg.finetune.seeds))} (prep and synthesize once; the later stages "
                    f"per seed in {self.out}/seed<k>/; RESULTS.md over seeds)"] if cfg.finetune.seeds else []),
                 "planned stages:"]
        for i, (stage, action) in enumerate(self.runner.plan(from_stage, stop_stage), 1):
            lines.append(f"  {i}. {stage.name:<14} [{action}] {stage.doc}")
            for d in stage.describe(self):
                lines.append(f"       {d}")
        return "\n".join(lines)

    def resolved_config(self) -> dict:
        """The config as run: variant and overrides applied, relative paths made absolute."""
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
        """Write ``recipe.yaml`` (the config as run) and run the planned stages; ``(stage, what happened)``."""
        import yaml

        if self.cfg.finetune.seeds:  # names and order here; each seed's runner checks its own stages
            self.runner.plan(from_stage, stop_stage)
        else:
            self.runner.check(from_stage, stop_stage)  # stage names and order checked before anything is written
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.out / "recipe.yaml") as fh:
            fh.write(f"# as run from {self.cfg.source_path}" + (f", variant {self.cfg.variant}" if self.cfg.variant else "") + "\n")
            yaml.safe_dump(self.resolved_config(), fh, sort_keys=False, allow_unicode=True)
        seeds = self.cfg.finetune.seeds
        if not seeds:
            return self.runner.run(from_stage, stop_stage, echo=self.echo)
        return self._run_seeds(seeds, from_stage, stop_stage)

    def _run_seeds(self, seeds: list[int], from_stage, stop_stage) -> list[tuple[str, str]]:
        """prep and synthesize here, the rest once per seed in ``seed<k>/``, then the report over seeds."""
        from asr_analogy.analogy.seeds import seed_config, write_aggregate

        shared = [st for st in STAGES if st.name in SHARED_STAGES]
        names = [st.name for st in STAGES]
        first_seeded = names.index(STAGES[len(shared)].name)
        top_from = from_stage if from_stage in SHARED_STAGES else None
        top_stop = stop_stage if stop_stage in SHARED_STAGES else None
        done = StageRunner(self.out, shared, self.cfg.section_hash, context=self).run(top_from, top_stop, echo=self.echo)
        if stop_stage in SHARED_STAGES:
            return done
        seed_from = from_stage if from_stage and names.index(from_stage) >= first_seeded else None
        runs = [Syn2RealRecipe(seed_config(self.cfg, k), self.echo, data_from=self) for k in seeds]
        for run_k in runs:
            run_k.seeded_runner.check(seed_from, stop_stage)
        for k, run_k in zip(seeds, runs):
            self.echo(f"[seeds] seed {k} → {self.out / f'seed{k}'}")
            done += [(f"seed{k}/{name}", what) for name, what in
                     run_k.seeded_runner.run(seed_from, stop_stage, echo=self.echo)]
        if stop_stage in (None, names[-1]):
            self.echo(f"wrote {write_aggregate(self.cfg, seeds)}")
        return done


def _looks_local(value: str) -> bool:
    """A path written as one (absolute, ./, ../, ~), not a hub id such as ``openai/whisper-tiny``."""
    return value.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(value))


def _check_local_inputs(cfg: RecipeConfig) -> None:
    """The base model folder and the corpus manifest exist where the config names local paths."""
    where = cfg.source_path or "recipe"
    base = cfg.base_model
    if not base.startswith("bundled:") and _looks_local(base):
        path = Path(cfg.resolve_path(base))
        if not (path / "config.json").is_file():
            what = "does not exist" if not path.exists() else "holds no config.json (not a model folder)"
            raise ConfigError(f"{where}: base_model {path} {what}")
    if cfg.corpus.preparer == "manifest" and cfg.corpus.manifest:
        manifest = Path(cfg.resolve_path(cfg.corpus.manifest))
        if not manifest.is_file():
            raise ConfigError(f"{where}: corpus.manifest {manifest} does not exist")


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
    **run_options,
) -> Syn2RealRecipe:
    """The IVR recipe's ``demo`` variant (one target domain, offline defaults; ``variant`` picks another one of
    the recipe's variants, e.g. ``demo_noisy``); prints the result table. ``run_options``: ``run``'s
    ``from_stage``, ``stop_stage``, ``dry_run`` and ``echo``."""
    over = dict(overrides or {})
    if target:
        over = deep_merge(over, {"domains": {"targets": [target]}})
    if exp_dir:
        over = deep_merge(over, {"exp_dir": exp_dir})
    dry_run, echo = run_options.get("dry_run", False), run_options.get("echo", print)
    t0 = time.time()
    recipe = run(default_recipe_path(), variant=variant, overrides=over or None, **run_options)
    if not dry_run and (recipe.out / "RESULTS.md").is_file():
        from asr_analogy.analogy.report import result_table

        echo("")
        echo(result_table(read_json(recipe.out / "results.json")))
        echo(f"\ndemo finished in {(time.time() - t0) / 60:.1f} min; full report: {recipe.out / 'RESULTS.md'}")
    return recipe
