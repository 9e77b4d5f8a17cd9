"""Stage ``vectors``: θ_B − θ_A of every analogy (target and pseudo-targets) and the ensembles (the member
vector files combined by ``merge()``, ``analogy.vectors.ensemble_vector_file``), under ``vectors/`` with
``index.json`` (norms, cosines). A vector's id hashes the fingerprints of the models it is
made from, so a vector whose id is in the index and on disk is never recomputed."""

from __future__ import annotations

from asr_analogy.analogy.cache import read_json, write_json
from asr_analogy.analogy.context import RecipeContext
from asr_analogy.analogy.stages.base import Stage


def describe(ctx: RecipeContext) -> list[str]:
    e = ctx.cfg.ensemble
    lines = ["syn2real vector v = θ_B − θ_A per analogy (target and pseudo-targets)"]
    if e.enabled:
        dens = f", density {e.density}" if e.density is not None else ""
        lines.append(f"ensemble: {e.method} over one (A_i, B_i) pair per {e.by}{dens}")
    sparse = [o for o in ctx.cfg.lambda_.search if o.startswith("topk:")]
    if sparse:
        lines.append(f"sparse versions of v: {', '.join(sparse)} (largest-magnitude entries per tensor)")
    return lines


def run(ctx: RecipeContext) -> dict:
    from asr_analogy.analogy.vectors import ensemble_vector_file, load_vector, save_vector, syn2real_vector, vector_stats
    from asr_analogy.analogy.options import parse_option
    from asr_analogy.merge.task_vector import TaskVector, is_task_vector_file, read_vector_metadata, vector_provenance
    from asr_analogy.ops.sparsify import magnitude

    plan = ctx.plan()
    index_path = ctx.out / "vectors" / "index.json"
    index = read_json(index_path) if index_path.is_file() else {}
    e = ctx.cfg.ensemble

    def is_stored(vector_id: str) -> bool:
        return vector_id in index and is_task_vector_file(ctx.vector_path(vector_id))

    def ensemble_is_stored(vector_id: str) -> bool:
        """Stored, and combined by the merge kernel, which records its inputs (ensembles of earlier versions,
        whose DARE masks were drawn differently, are recomputed)."""
        if not is_stored(vector_id):
            return False
        return "inputs" in vector_provenance(read_vector_metadata(ctx.vector_path(vector_id)))

    def pair_vector(a: str, b: str) -> tuple[str, dict]:
        vector_id = ctx.pair_id(a, b)
        if is_stored(vector_id):
            return vector_id, load_vector(ctx.vector_path(vector_id))
        vector = syn2real_vector(ctx.model_dir(a), ctx.model_dir(b))
        names = {"kind": "syn2real", "A": plan.jobs[a].dirname, "B": plan.jobs[b].dirname}
        save_vector(vector, ctx.vector_path(vector_id), names)
        index[vector_id] = {**names, "stats": vector_stats(vector)}
        write_json(index_path, index)
        return vector_id, vector

    def sparse_vector(vector_id: str, main, option: str, sparse_id: str) -> None:
        """The vector keeping, per tensor, its top fraction of entries by magnitude (``ops.sparsify.magnitude``)."""
        if is_stored(sparse_id):
            return
        fraction = parse_option(option)[1]
        kept = TaskVector({n: magnitude(t, fraction) for n, t in main.items()}, main.base_fingerprint,
                          f"topk:{fraction:g}", {**main.provenance, "sparse": option, "from": vector_id})
        save_vector(kept, ctx.vector_path(sparse_id))
        index[sparse_id] = {"kind": "sparse", "option": option, "from": vector_id, "stats": vector_stats(kept, main)}
        write_json(index_path, index)

    for suite in [s for tp in plan.targets for s in [tp.main, *tp.pseudo]]:
        ids = ctx.suite_vectors(suite)
        ensemble_id = ids["ensemble"]
        main_id, main = pair_vector(suite.A, suite.B)
        for option in ctx.cfg.lambda_.search:
            if option.startswith("topk:"):
                sparse_vector(main_id, main, option, ids[option])
        if ensemble_id and not ensemble_is_stored(ensemble_id):
            members = [(label, *pair_vector(a, b)) for label, a, b in suite.ensemble]
            path = ensemble_vector_file([ctx.vector_path(vector_id) for _, vector_id, _ in members],
                                        ctx.vector_path(ensemble_id), e.method, e.density, e.seed)
            ensemble = load_vector(path)
            index[ensemble_id] = {
                "kind": "ensemble", "method": e.method, "density": e.density, "by": e.by,
                "members": [{"label": label, "vector": vector_id} for label, vector_id, _ in members],
                "stats": vector_stats(ensemble, main),
                "member_cosines": {label: vector_stats(v, main)["cosine"] for label, _, v in members},
            }
            write_json(index_path, index)
    return {"vectors": sorted(index)}


STAGE = Stage("vectors", run, inputs=("ensemble",), outputs=("vectors/*.safetensors", "vectors/index.json"),
              describe=describe, doc="θ_B − θ_A, ensembles")
