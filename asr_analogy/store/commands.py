"""The ``store``, ``diagnose`` and ``compress`` verbs of ``asr-analogy``: thin click wrappers around
``store.gear``, ``store.diagnose`` and ``merge.compressed.compress``, registered by ``asr_analogy.cli``.
Implementations are imported when a verb runs, so ``asr-analogy --help`` stays fast."""

from __future__ import annotations

import json

import click

from asr_analogy.errors import CheckpointError

_STORE_HELP = "Store directory (default: $ASR_ANALOGY_STORE, else ~/.cache/asr_analogy/store)."


@click.group("store")
def store_group() -> None:
    """A local store of task vectors: add, list, show, verify, equip, rm."""


def _store_option(f):
    return click.option("--store", "store", default=None, type=click.Path(file_okay=False), help=_STORE_HELP)(f)


@store_group.command("add")
@click.argument("name")
@click.argument("vector", type=click.Path(exists=True, dir_okay=False))
@click.option("--meta", "metas", multiple=True, metavar="KEY=VALUE",
              help="base_name, base_model, architecture, license, metrics.wer=..., data=..., steps=... (repeatable).")
@click.option("--force", is_flag=True, help="Let NAME point to this vector even if it holds another.")
@_store_option
def store_add(name, vector, metas, force, store):
    """Add the task vector VECTOR (.safetensors) to the store as NAME."""
    from asr_analogy.io.yaml_file import parse_overrides
    from asr_analogy.store.gear import add

    record = add(name, vector, store=store, meta=parse_overrides(metas, "--meta"), force=force)
    click.echo(f"{name}\t{record['sha256']}")


@store_group.command("list")
@_store_option
def store_list(store):
    """One line per entry: name, SHA-256 prefix, base, method, created."""
    from asr_analogy.store.gear import list_entries

    for e in list_entries(store):
        click.echo(f"{e['name']}\t{e['sha256'][:12]}\t{e['base_name'] or '-'}\t{e['method'] or '-'}\t{e['created']}")


@store_group.command("show")
@click.argument("name")
@_store_option
def store_show(name, store):
    """The record of NAME as JSON (with its folder and vector path)."""
    from asr_analogy.store.gear import show

    click.echo(json.dumps(show(name, store), indent=1, sort_keys=True))


@store_group.command("verify")
@click.argument("name", required=False)
@_store_option
def store_verify(name, store):
    """Re-hash NAME (default: every entry); fails when any byte changed."""
    from asr_analogy.store.gear import verify

    report = verify(name, store)
    for entry, problems in report.items():
        click.echo(f"ok\t{entry}" if not problems else f"CHANGED\t{entry}: {'; '.join(problems)}")
    bad = [n for n, p in report.items() if p]
    if bad:
        raise CheckpointError(f"{len(bad)} of {len(report)} store entries failed verification: {', '.join(bad)}")


@store_group.command("equip")
@click.argument("base")
@click.argument("items", nargs=-1, required=True, metavar="NAME[:WEIGHT]... OUT")
@click.option("--method", default="task_arithmetic", show_default=True,
              help="task_arithmetic, ties, dare_ties, dare_linear, magnitude_prune, breadcrumbs, breadcrumbs_ties.")
@click.option("--density", type=float, default=None, help="Fraction kept by sparsifying methods (ties, dare_*).")
@click.option("--lambda", "lam", type=float, default=None, help="Scale of the combined vectors (default 1).")
@click.option("--allow-other-base", is_flag=True, help="Equip even if BASE is not the model the vectors come from.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_store_option
def store_equip(base, items, method, density, lam, allow_other_base, force, quiet, store):
    """Write BASE plus the store entries NAME (each times WEIGHT, default 1) to OUT through the merge engine."""
    from asr_analogy.merge import tune_malloc
    from asr_analogy.store.gear import equip

    if len(items) < 2:
        raise click.UsageError("give at least one NAME[:WEIGHT] and OUT")
    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap
    click.echo(str(equip(base, list(items[:-1]), items[-1], store=store, method=method, density=density, lam=lam,
                         allow_other_base=allow_other_base, force=force, progress=not quiet)))


@store_group.command("rm")
@click.argument("name")
@_store_option
def store_rm(name, store):
    """Remove NAME from the store (its folder too, unless another name holds the same vector)."""
    from asr_analogy.store.gear import rm

    rm(name, store)
    click.echo(f"removed {name}")


@click.command("diagnose")
@click.argument("vectors", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write diagnostics.json and heatmaps (cosine/sign_conflict/jaccard.png) here.")
@click.option("--top-k", "top_k", type=float, default=0.1, show_default=True,
              help="Fraction of each tensor's entries in its top-k mask (by magnitude).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def diagnose_cmd(vectors, out_dir, top_k, quiet):
    """Interference between task vectors V1 V2 ...: cosine, sign conflicts, top-k overlap, norms, per layer."""
    from asr_analogy.io.atomic import refuse_overlap
    from asr_analogy.store.diagnose import diagnose

    if out_dir:
        refuse_overlap(out_dir, list(vectors))
    report = diagnose(list(vectors), out_dir, top_k=top_k, progress=not quiet)
    for pair in report["pairs"]:
        s = pair["all"]
        click.echo(f"{pair['a']} / {pair['b']}: cosine {_num(s['cosine'])}, sign conflict {_num(s['sign_conflict'])}, "
                   f"top-k overlap {_num(s['jaccard'])}, norms {_num(s['norm_a'])} {_num(s['norm_b'])}")


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"


@click.command("compress")
@click.argument("vector", type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--method", required=True, help="topk:FRACTION | lowrank:RANK | int8 | int4, combined with commas.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def compress_cmd(vector, out, method, force, quiet):
    """Write VECTOR compressed to OUT (.safetensors); apply-vector, merge and the store read it as is."""
    from asr_analogy.merge.compressed import compress

    result = compress(vector, out, method, force=force, progress=not quiet)
    click.echo(f"{result.path}: {result.nbytes} bytes, {100 * result.share:.2f}% of float32 "
               f"({result.float32_nbytes} bytes)")
