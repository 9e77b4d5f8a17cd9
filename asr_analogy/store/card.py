"""The model card (README.md) of a store entry, through huggingface_hub's ``ModelCard``: YAML front matter the
Hub reads (``license``, ``library_name``, ``tags``, ``base_model`` when it is a hub id) plus an ``asr_analogy``
block with everything the store records, and a short text saying what the vector is and how to use it. The
card format itself (front matter, tables) is shared with every model the project writes: ``io.model_card``."""

from __future__ import annotations

from typing import Mapping

from huggingface_hub import ModelCard, ModelCardData

from asr_analogy.io.model_card import cell, is_hub_id, render

FIELDS = ("sha256", "base_fingerprint", "base_name", "architecture", "method", "compression", "provenance",
          "metrics", "license", "created", "nbytes")


def model_card(name: str, info: Mapping) -> ModelCard:
    """The card of entry ``name``; ``info`` holds ``FIELDS`` (missing ones are left out)."""
    record = {k: info[k] for k in FIELDS if info.get(k) not in (None, "", {})}
    base_model = info.get("base_model") or ""
    data = ModelCardData(
        license=info.get("license") or None,
        library_name="asr-analogy",
        tags=["task-vector", "asr-analogy"],
        base_model=base_model if is_hub_id(base_model) else None,
        asr_analogy={"name": name, **record},
    )
    rows = "\n".join(f"| {k} | {cell(v)} |" for k, v in record.items())
    body = (
        "A task vector (fine-tuned weights minus base weights) in the asr-analogy format. It belongs to the base "
        "whose full fingerprint is recorded below; equip it with\n\n"
        f"    asr-analogy store equip BASE {name} OUT\n\n"
        "or `asr-analogy apply-vector BASE task_vector.safetensors OUT`.\n\n"
        f"| field | value |\n|---|---|\n{rows}\n"
    )
    return render(data, name, body)
