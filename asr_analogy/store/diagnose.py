"""Interference diagnostics of task vectors before merging them: for every pair of vectors and every layer,
cosine similarity, the sign-conflict rate among the entries both rank in their top-k by magnitude, the overlap
(Jaccard) of the top-k masks, and the norms (maths in ``ops.interference``).

Tensors are grouped by the first number in their name (the layer index) and by the encoder/decoder part where
the name says so (``encoder.3``, ``decoder.rest``: tensors of the part outside numbered layers; ``layer.3`` and
``rest`` for models without parts); totals per part and over the whole vector (``all``) are reported too.
The top-k masks are taken per tensor (``fraction`` of each tensor's entries). Streamed tensor by tensor: memory
is one tensor of each vector. Writes ``diagnostics.json`` and one heatmap per measure (``cosine.png``,
``sign_conflict.png``, ``jaccard.png``: rows are pairs, columns are layer groups).
"""

from __future__ import annotations

import json
import math
import os
from contextlib import ExitStack
from itertools import combinations
from pathlib import Path
from typing import Sequence

from asr_analogy.errors import ConfigError, MergeError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.checkpoint import natural_key
from asr_analogy.merge.compressed import open_reader
from asr_analogy.merge.vector_format import read_vector_metadata
from asr_analogy.ops.interference import PairStats, pair_stats, top_mask

MEASURES = ("cosine", "sign_conflict", "jaccard")


def layer_group(name: str) -> tuple[str, str]:
    """``(part, group)`` of a tensor name: ``model.encoder.layers.3.fc1.weight`` -> ("encoder", "encoder.3")."""
    parts = name.split(".")
    part = next((p for p in ("encoder", "decoder") if p in parts), "")
    index = next((p for p in parts if p.isdigit()), None)
    if index is None:
        return part, f"{part}.rest" if part else "rest"
    return part, f"{part}.{index}" if part else f"layer.{index}"


def _labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    stems = [Path(p).name.removesuffix(".safetensors") for p in paths]
    return [s if stems.count(s) == 1 else f"{s}#{i + 1}" for i, s in enumerate(stems)]


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def diagnose(vectors: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *, top_k: float = 0.1,
             progress: bool = True) -> dict:
    """The diagnostics of every pair of ``vectors`` (task-vector files, compressed ones too) as a dict (the
    JSON report); with ``out``, also written there with the heatmaps. ``top_k``: fraction of each tensor's
    entries in its top-k mask, in (0, 1]. Raises ``MergeError`` when the vectors do not hold the same tensors."""
    from tqdm.auto import tqdm

    if len(vectors) < 2:
        raise ConfigError("diagnose needs at least two task vectors")
    if not 0 < top_k <= 1:
        raise ConfigError(f"top-k fraction {top_k} must be in (0, 1]")
    labels = _labels(vectors)
    for path in vectors:
        read_vector_metadata(path)  # each input must be a task vector
    pairs = list(combinations(range(len(vectors)), 2))
    totals: list[dict[str, PairStats]] = [{} for _ in pairs]
    with ExitStack() as stack:
        readers = [stack.enter_context(open_reader(p)) for p in vectors]
        names = readers[0].names()
        for label, reader in zip(labels[1:], readers[1:]):
            if set(reader.names()) != set(names):
                missing = sorted(set(names) ^ set(reader.names()), key=natural_key)
                raise MergeError(f"vectors {labels[0]} and {label} hold different tensors (e.g. {missing[0]!r})")
        for name in tqdm(names, desc="diagnose", disable=not progress, leave=False):
            shapes = {r.shape(name) for r in readers}
            if len(shapes) > 1:
                raise MergeError(f"tensor {name!r}: shapes {sorted(map(list, shapes))} differ between the vectors")
            tensors = [r.get(name) for r in readers]
            for label, t in zip(labels, tensors):
                if t.is_floating_point() and not bool(t.isfinite().all()):
                    raise MergeError(f"vector {label}: tensor {name!r} holds NaN or Inf; it cannot be diagnosed")
            masks = [top_mask(t, top_k) for t in tensors]
            part, group = layer_group(name)
            keys = ["all", group] + ([part] if part else [])
            for k, (i, j) in enumerate(pairs):
                stats = pair_stats(tensors[i], tensors[j], masks[i], masks[j])
                for key in keys:
                    totals[k][key] = totals[k].get(key, PairStats()) + stats
            del tensors, masks
            for r in readers:
                r.release(name)
    groups = sorted({g for t in totals for g in t if g not in ("all", "encoder", "decoder")}, key=natural_key)
    report = {
        "top_k": top_k,
        "vectors": [{"label": label, "path": str(path)} for label, path in zip(labels, vectors)],
        "groups": groups,
        "pairs": [
            {"a": labels[i], "b": labels[j],
             **{key: {m: _finite(v) for m, v in totals[k][key].summary().items()}
                for key in ("all", "encoder", "decoder") if key in totals[k]},
             "layers": {g: {m: _finite(v) for m, v in totals[k][g].summary().items()} for g in groups if g in totals[k]}}
            for k, (i, j) in enumerate(pairs)
        ],
    }
    if out is not None:
        write_report(report, out)
    return report


def write_report(report: dict, out: str | os.PathLike) -> Path:
    """``diagnostics.json`` and one heatmap PNG per measure in the directory ``out`` (each written atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "diagnostics.json") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    for measure in MEASURES:
        _heatmap(report, measure, out / f"{measure}.png")
    return out


def _heatmap(report: dict, measure: str, path: Path) -> None:
    """Rows: pairs; columns: layer groups; cells: ``measure`` (blank where undefined). Object-oriented
    matplotlib (Agg canvas): the process's pyplot state is left alone."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = report["groups"]
    rows = [f"{p['a']} / {p['b']}" for p in report["pairs"]]
    values = np.array([[np.nan if (p["layers"].get(g) or {}).get(measure) is None else p["layers"][g][measure]
                        for g in groups] for p in report["pairs"]], dtype=float)
    fig = Figure(figsize=(max(4.0, 0.35 * len(groups) + 2), max(2.0, 0.4 * len(rows) + 1.2)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    limits = (-1.0, 1.0) if measure == "cosine" else (0.0, 1.0)
    image = ax.imshow(values, aspect="auto", cmap="coolwarm" if measure == "cosine" else "viridis",
                      vmin=limits[0], vmax=limits[1])
    ax.set_xticks(range(len(groups)), groups, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(f"{measure} (top-k {report['top_k']:g})" if measure != "cosine" else "cosine similarity")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
