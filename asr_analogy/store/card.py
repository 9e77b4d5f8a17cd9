"""The model card (README.md) of a store entry, through huggingface_hub's ``ModelCard``: YAML front matter the
Hub reads (``license``, ``library_name``, ``tags``, ``base_model`` when it is a hub id) plus an ``asr_analogy``
block with everything the store records, and a short text saying what the vector is and how to use it."""

from __future__ import annotations

import json
import re
from typing import Mapping

from huggingface_hub import ModelCard, ModelCardData

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
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
        base_model=base_model if _HUB_ID.match(base_model) else None,
        asr_analogy={"name": name, **record},
    )
    rows = "\n".join(f"| {k} | {_cell(v)} |" for k, v in record.items())
    text = (
        f"---\n{data.to_yaml()}\n---\n\n# {name}\n\n"
        "A task vector (fine-tuned weights minus base weights) in the asr-analogy format. It belongs to the base "
        "whose full fingerprint is recorded below; equip it with\n\n"
        f"    asr-analogy store equip BASE {name} OUT\n\n"
        "or `asr-analogy apply-vector BASE task_vector.safetensors OUT`.\n\n"
        f"| field | value |\n|---|---|\n{rows}\n"
    )
    return ModelCard(text)


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|")
