"""The metadata of the task-vector file format (keys in ``merge.task_vector``'s docstring): writing it,
reading it back, and checking that several vectors (and a base) belong together.

Task vectors as inputs (methods that combine deltas: task_arithmetic, ties, dare_linear, dare_ties,
magnitude_prune, breadcrumbs, breadcrumbs_ties). An entry ``vector: PATH`` names a task-vector file
(``merge.task_vector``'s format, e.g. from ``asr-analogy vector``); its tensors are that term's delta as they
are, nothing is subtracted::

    merge_method: ties
    models:                         # no base_model: the output is a task-vector file, the combined deltas
      - vector: vectors/voice-a.safetensors
      - vector: vectors/voice-b.safetensors
    parameters: {density: 0.5}

With ``base_model`` (vector and model entries may be mixed) the output is the model base + lambda * combine(...).
Every vector's recorded base fingerprint must agree with the other vectors' and with the base's; a mismatch is
an error unless ``allow_other_base: true`` (then the output vector records no base when they disagree). A
vector holds every floating-point tensor of the base (its other tensors are copied from the base). Output
of vectors only: metadata ``asr_analogy_kind=task_vector`` with provenance ``{"kind": "merge", "method": ...,
"inputs": [...]}``, written as one ``.safetensors`` file when ``out`` ends so, else as a directory.

Kept apart from ``merge.task_vector`` so that the merge plan, which reads task-vector files as merge inputs,
and ``merge.task_vector``, which uses the plan's checks, import it without importing each other.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

from asr_analogy.errors import CheckpointError, MergeError
from asr_analogy.io.checkpoint import CheckpointReader, fingerprint_mismatch

KIND = "task_vector"
COMPRESSED_KIND = "task_vector_compressed"  # a compressed vector (``merge.compressed``), read expanded


def vector_metadata(
    method: str, base_fingerprint: str | None, count: int, *, finetuned_fingerprint: str | None = None,
    provenance: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The ``__metadata__`` of a task-vector file."""
    return {
        "asr_analogy_kind": KIND,
        "method": method,
        "base_fingerprint": base_fingerprint or "",
        "finetuned_fingerprint": finetuned_fingerprint or "",
        "tensor_count": str(count),
        "provenance": json.dumps(dict(provenance or {}), sort_keys=True),
    }


def check_vector_metadata(meta: Mapping[str, str], path: str | os.PathLike) -> dict[str, str]:
    """``meta`` when it is a task vector's metadata (a compressed one's reads as ``task_vector``, its
    ``compression`` key saying how); ``CheckpointError`` naming ``path`` otherwise."""
    if meta.get("asr_analogy_kind") not in (KIND, COMPRESSED_KIND):
        raise CheckpointError(f"{path}: not a task vector (no asr_analogy_kind=task_vector in its metadata)")
    return {**meta, "asr_analogy_kind": KIND}


def read_vector_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a saved task vector; ``CheckpointError`` when ``path`` is not one."""
    with CheckpointReader(path) as reader:
        return check_vector_metadata(reader.metadata(), path)


def is_task_vector_file(path: str | os.PathLike) -> bool:
    """True when ``path`` exists and is a task vector in this format (older files are not)."""
    try:
        read_vector_metadata(path)
    except CheckpointError:
        return False
    return True


def vector_provenance(meta: Mapping[str, str]) -> dict:
    """The ``provenance`` object of a vector's metadata (``{}`` when absent or unreadable)."""
    try:
        value = json.loads(meta.get("provenance") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def common_base_fingerprint(vectors: Sequence[tuple[str, str]], base: tuple[str, str] | None = None, *,
                            allow_other_base: bool = False) -> str:
    """The base fingerprint that the vectors ``[(label, recorded fingerprint), ...]`` share ("" when none is
    recorded). Unless ``allow_other_base``, every recorded fingerprint must agree with the others and with
    ``base`` = ``(label, actual fingerprint)`` when given, else ``MergeError`` names the two inputs and why
    (``fingerprint_mismatch``). With ``allow_other_base``, fingerprints that disagree give ""."""
    known = [(label, fp) for label, fp in vectors if fp]
    if base is not None:
        for label, fp in known:
            why = fingerprint_mismatch(fp, base[1])
            if why and not allow_other_base:
                raise MergeError(f"vector {label} does not belong to base {base[0]}: {why}; "
                                 "set allow_other_base: true to merge it with a different base anyway")
    for label, fp in known[1:]:
        why = fingerprint_mismatch(known[0][1], fp)
        if why:
            if allow_other_base:
                return ""
            raise MergeError(f"vectors {known[0][0]} and {label} come from different bases: {why}; "
                             "set allow_other_base: true to combine them anyway")
    return known[0][1] if known else ""
