"""The text-arithmetic example: task vectors of a causal LM fine-tuned on two text domains, kept in the store,
added (one model for both domains) and negated (forget one domain, keep the other), scored by perplexity.

``run_example(config, out_dir)`` runs the stages below; each writes under ``out_dir`` and is skipped when its
output is already there, so an interrupted run resumes (scores are cached in ``scores.json``):

1. ``data/``: each domain's files split by file (``corpus``), tokenized into train / dev / test rows
   (``blocks.safetensors``; the file lists in ``splits.json``).
2. ``models/ft_<domain>``: one short fine-tune per domain from the base (``train``);
   ``vectors/<domain>.safetensors``: tau = theta_ft - theta_base (``merge.vector``), added to the store
   ``store/`` under the domain's name (``store.add``).
3. lambda on the dev rows only: ``store equip BASE a b --lambda L`` for the ``lambda.both`` grid (lowest mean dev
   log-perplexity of the two domains) and ``store equip BASE forget:-1 --lambda L`` for the ``lambda.forget``
   grid (highest dev perplexity of the forgotten domain while the kept one stays within ``keep_tolerance`` of
   the base); ``models/both`` and ``models/forget_<domain>`` with the chosen lambdas.
4. compact vectors: each of ``compress`` (``merge.compressed.compress``) on both vectors, stored as
   ``<domain>.<method>`` (``topk:0.1,int8`` as ``topk0.1-int8``), equipped the same way (``models/both.<method>``,
   ``models/forget_<domain>.<method>``).
5. ``diagnostics/``: the interference diagnostics of the two vectors (``store.diagnose``).
6. test perplexity of every model on each domain's test rows: ``results.json`` and ``results.md`` (the table).

The validated config is written to ``config.json``. A stage is skipped when its output exists, whatever the
config says now: delete a stage's output (or use a new ``out_dir``) after changing its settings.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch

from asr_analogy.io.atomic import atomic_file
from asr_analogy.textlm.config import ExampleConfig
from asr_analogy.textlm.corpus import DomainSpec, domain_files, split_files, token_blocks
from asr_analogy.textlm.perplexity import load_causal_lm, perplexity
from asr_analogy.textlm.train import TrainSettings, finetune_lm

SPLITS = ("train", "dev", "test")


def resolve_base(config: ExampleConfig) -> Path:
    """The base model directory: SmolLM2-135M (built once under ``cache_dir``) or the configured directory."""
    if config.base == "smollm2":
        from asr_analogy.textlm.smollm2 import smollm2_base

        return smollm2_base(config.cache_dir)
    return Path(config.base)


def prepare_data(config: ExampleConfig, tokenizer, data_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{domain: {split: LongTensor [rows, block_size]}}``, read from ``data_dir`` or built there (stage 1)."""
    from safetensors.torch import load_file

    blocks_path = data_dir / "blocks.safetensors"
    if not blocks_path.is_file():
        d = config.data
        rows = {"train": d.train_blocks, "dev": d.dev_blocks, "test": d.test_blocks}
        tensors, listing = {}, {}
        for domain, spec in config.domains.items():
            files = domain_files(DomainSpec(spec.root, tuple(spec.patterns), spec.recursive, spec.min_chars,
                                            spec.max_bytes))
            splits = split_files(files, d.seed, d.dev, d.test)
            listing[domain] = {k: [str(p) for p in v] for k, v in splits.items()}
            for split in SPLITS:
                tensors[f"{domain}/{split}"] = token_blocks(splits[split], tokenizer, d.block_size, rows[split],
                                                            d.max_tokens_per_file)
        data_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(data_dir / "splits.json") as fh:
            json.dump(listing, fh, indent=1)
        with atomic_file(blocks_path, "wb", encoding=None) as fh:
            fh.write(_safetensors_bytes(tensors))
    loaded = load_file(blocks_path)
    return {domain: {s: loaded[f"{domain}/{s}"] for s in SPLITS} for domain in config.domains}


def _safetensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()})


class Scores:
    """Perplexities cached in ``path`` (JSON ``{model: {domain/split: Perplexity.as_dict()}}``), so a resumed
    run does not score a model twice."""

    def __init__(self, path: Path, blocks: dict[str, dict[str, torch.Tensor]], batch_size: int):
        self.path, self.blocks, self.batch_size = path, blocks, batch_size
        self.data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def get(self, name: str, model_dir: Path, split: str) -> dict[str, dict]:
        """``{domain: score}`` of the model ``name`` (in ``model_dir``) on ``split`` rows of every domain."""
        wanted = [f"{d}/{split}" for d in self.blocks]
        have = self.data.setdefault(name, {})
        if any(k not in have for k in wanted):
            model = load_causal_lm(model_dir)
            for key in wanted:
                domain = key.split("/")[0]
                have[key] = perplexity(model, self.blocks[domain][split], self.batch_size).as_dict()
            del model
            with atomic_file(self.path) as fh:
                json.dump(self.data, fh, indent=1, sort_keys=True)
        return {k.split("/")[0]: have[k] for k in wanted}


def _equip(base: Path, gear: list[str], out: Path, store: Path, lam: float) -> Path:
    from asr_analogy.store.gear import equip

    if not out.exists():
        equip(base, gear, out, store=store, lam=lam, progress=False)
    return out


def choose_lambda(config: ExampleConfig, base: Path, store: Path, scores: Scores, work: Path,
                  log: Callable[[str], None]) -> dict:
    """Stage 3: the lambdas of the sum and of the negation, chosen on the dev rows (see the module)."""
    domains, forget, keep = list(config.domains), config.forget, config.keep
    grid = config.lambdas
    base_dev = scores.get("base", base, "dev")

    def dev_scores(kind: str, gear: list[str], lam: float) -> dict:
        name, sweep = f"dev:{kind}:{lam:g}", work / "sweep"
        if name not in scores.data:
            shutil.rmtree(sweep, ignore_errors=True)  # a model left by an interrupted run may hold another lambda
            _equip(base, gear, sweep, store, lam)
        got = scores.get(name, sweep, "dev")
        shutil.rmtree(sweep, ignore_errors=True)
        return got

    both = {lam: dev_scores("both", domains, lam) for lam in grid.both}
    negate = {lam: dev_scores("forget", [f"{forget}:-1"], lam) for lam in grid.forget}
    lam_both = min(both, key=lambda lam: sum(both[lam][d]["nll_per_token"] for d in domains))
    limit = (1 + grid.keep_tolerance) * base_dev[keep]["perplexity"]
    allowed = [lam for lam in grid.forget if negate[lam][keep]["perplexity"] <= limit]
    lam_forget = max(allowed, key=lambda lam: negate[lam][forget]["perplexity"]) if allowed else min(grid.forget)
    log(f"lambda: both {lam_both:g}, forget {forget} {lam_forget:g} (dev)")
    return {"both": lam_both, "forget": lam_forget, "keep_limit": limit, "base_dev": base_dev,
            "dev_both": {f"{k:g}": v for k, v in both.items()}, "dev_forget": {f"{k:g}": v for k, v in negate.items()}}


def _slug(method: str) -> str:
    """A store-name-safe form of a compression method: ``topk:0.1,int8`` -> ``topk0.1-int8``."""
    return method.replace(":", "").replace(",", "-")


def run_example(config: ExampleConfig, out_dir: str | os.PathLike, *, progress: bool = True,
                log: Callable[[str], None] = print) -> dict:
    """Run every stage (see the module) under ``out_dir`` and return the results (also in ``results.json``)."""
    from transformers import AutoTokenizer

    from asr_analogy.merge import vector
    from asr_analogy.merge.compressed import compress
    from asr_analogy.store.diagnose import diagnose
    from asr_analogy.store.gear import add

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "config.json") as fh:
        json.dump(config.model_dump(mode="json", by_alias=True), fh, indent=1)
    base = resolve_base(config)
    blocks = prepare_data(config, AutoTokenizer.from_pretrained(str(base)), out / "data")
    store, models, vectors = out / "store", out / "models", out / "vectors"
    vectors.mkdir(exist_ok=True)
    scores = Scores(out / "scores.json", blocks, config.eval_batch_size)
    settings = TrainSettings(**config.finetune.model_dump())
    paths = {}
    for domain in config.domains:
        ft = models / f"ft_{domain}"
        if not ft.exists():
            log(f"fine-tuning on {domain} ({settings.steps} steps)")
            finetune_lm(base, blocks[domain]["train"], ft, settings, progress=progress)
        paths[domain] = vectors / f"{domain}.safetensors"
        if not paths[domain].exists():
            vector(ft, base, paths[domain], progress=False)
        rows = blocks[domain]["train"].shape
        add(domain, paths[domain], store=store, meta={
            "base_name": base.name, "data": f"{domain}: {rows[0]} rows x {rows[1]} tokens", "steps": settings.steps,
            "learning_rate": settings.learning_rate, "trainable": settings.trainable or "all"})
    lam = choose_lambda(config, base, store, scores, out, log)
    forget = config.forget
    built = {"base": base, **{f"ft_{d}": models / f"ft_{d}" for d in config.domains}}
    built["both"] = _equip(base, list(config.domains), models / "both", store, lam["both"])
    built[f"forget_{forget}"] = _equip(base, [f"{forget}:-1"], models / f"forget_{forget}", store, lam["forget"])
    sizes = {}
    for method in config.compress:
        slug = _slug(method)
        for domain in config.domains:
            small = vectors / f"{domain}.{slug}.safetensors"
            if not small.exists():
                compress(paths[domain], small, method, progress=False)
            add(f"{domain}.{slug}", small, store=store, meta={"compressed_from": domain})
            sizes.setdefault(method, {})[domain] = small.stat().st_size / paths[domain].stat().st_size
        names = [f"{d}.{slug}" for d in config.domains]
        built[f"both.{slug}"] = _equip(base, names, models / f"both.{slug}", store, lam["both"])
        built[f"forget_{forget}.{slug}"] = _equip(base, [f"{forget}.{slug}:-1"], models / f"forget_{forget}.{slug}",
                                                   store, lam["forget"])
    report = diagnose([paths[d] for d in config.domains], out / "diagnostics", top_k=config.diagnose_top_k,
                      progress=False)
    test = {}
    for name, model_dir in built.items():
        log(f"scoring {name} on the test rows")
        test[name] = scores.get(name, model_dir, "test")
    results = {"base": str(base), "lambda": lam, "test": test, "compressed_share": sizes,
               "diagnostics": report["pairs"][0]["all"],
               "rows": {d: {s: list(blocks[d][s].shape) for s in SPLITS} for d in config.domains}}
    with atomic_file(out / "results.json") as fh:
        json.dump(results, fh, indent=1)
    with atomic_file(out / "results.md") as fh:
        fh.write(results_table(results, list(config.domains), forget))
    return results


def results_table(results: dict, domains: list[str], forget: str) -> str:
    """The Markdown table of test perplexities (one row per model, one column per domain)."""
    lam = results["lambda"]
    what = {"base": "base", "both": f"base + {lam['both']:g} (tau_{domains[0]} + tau_{domains[1]})",
            f"forget_{forget}": f"base - {lam['forget']:g} tau_{forget}",
            **{f"ft_{d}": f"fine-tuned on {d}" for d in domains}}
    lines = [f"| model | {' | '.join(f'{d} test perplexity' for d in domains)} |",
             "|---|" + "---:|" * len(domains)]
    for name, by_domain in results["test"].items():
        head, _, slug = name.partition(".")
        label = what.get(head, head) + (f", vectors compressed {slug}" if slug else "")
        lines.append(f"| {label} | " + " | ".join(f"{by_domain[d]['perplexity']:.2f}" for d in domains) + " |")
    return "\n".join(lines) + "\n"
