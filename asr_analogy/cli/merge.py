"""``merge``, ``vector``, ``apply-vector``: the merge core's commands."""

from __future__ import annotations

import click

from asr_analogy.cli.group import main


@main.command("merge")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--shard-size", default="5GB", show_default=True, help="Largest output shard, e.g. 2GB, 500MB, or bytes.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N, or auto (cuda when available).")
@click.option("--dtype", default=None, help="Merge in this dtype (float32, float64, ...); also the output dtype unless --out-dtype.")
@click.option("--out-dtype", default=None, help="Dtype of the written weights (default: --dtype, else the inputs').")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def merge_cmd(config, out_dir, shard_size, device, dtype, out_dtype, force, quiet):
    """Merge the checkpoints described by CONFIG (mergekit-style YAML or analogy:) into OUT_DIR."""
    from asr_analogy.merge import merge, tune_malloc

    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap

    out = merge(config, out_dir, force=force, shard_size=shard_size, device=device, dtype=dtype, out_dtype=out_dtype,
                progress=not quiet)
    click.echo(str(out))


@main.command("vector")
@click.argument("finetuned")
@click.argument("base")
@click.argument("out")
@click.option("--dtype", default=None, help="Dtype of the vector (default: the models', float32 for half precision).")
@click.option("--shard-size", default="5GB", show_default=True, help="Largest shard when OUT is a directory.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def vector_cmd(finetuned, base, out, dtype, shard_size, force, quiet):
    """Save the task vector FINETUNED - BASE to OUT (a .safetensors file or a directory)."""
    from asr_analogy.merge import vector, tune_malloc

    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap

    click.echo(str(vector(finetuned, base, out, force=force, dtype=dtype, shard_size=shard_size, progress=not quiet)))


@main.command("apply-vector")
@click.argument("base")
@click.argument("vector_path", metavar="VECTOR")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--scale", default=1.0, show_default=True, type=float, help="Multiplier of the vector (-1 negates).")
@click.option("--allow-other-base", is_flag=True, help="Apply even if BASE is not the model the vector was computed from.")
@click.option("--out-dtype", default=None, help="Dtype of the written weights (default: BASE's).")
@click.option("--shard-size", default="5GB", show_default=True, help="Largest output shard.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def apply_vector_cmd(base, vector_path, out_dir, scale, allow_other_base, out_dtype, shard_size, force, quiet):
    """Write BASE + SCALE * VECTOR to OUT_DIR (checks that VECTOR was computed from BASE)."""
    from asr_analogy.merge import apply_vector, tune_malloc

    tune_malloc()  # opt-in for this process: chunk-sized temporaries stay on the heap

    click.echo(str(apply_vector(base, vector_path, out_dir, scale=scale, force=force, allow_other_base=allow_other_base,
                                out_dtype=out_dtype, shard_size=shard_size, progress=not quiet)))
