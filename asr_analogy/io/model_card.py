"""Model cards (``README.md``) in the Hugging Face format, built with huggingface_hub's ``ModelCard`` and
``ModelCardData``: the front matter the Hub reads (``base_model``, ``base_model_relation``, ``library_name``,
``license``, ``tags``) and a body saying how the model was made, with a WER table where one exists.

``base_model`` names Hub models only (a local path means nothing on the Hub): a Hub id as it is, or, for a local
directory, the ``base_model`` recorded in that directory's own card (the nearest Hub model it descends from);
its local path is written in the body. The ``license`` is inherited from the first base's card where it has one.

    >>> card = model_card("ivr-merge", relation="merge", bases=["out/ft_a", "openai/whisper-tiny.en"],
    ...                   how="Task arithmetic, λ = 0.6.", wer=[{"test set": "ivr", "WER (%)": 12.5}])
    >>> card.save("out/merged/README.md")
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from huggingface_hub import ModelCard, ModelCardData

CARD_FILE = "README.md"
RELATIONS = ("finetune", "merge", "adapter", "quantized")
"""``base_model_relation`` values the Hub knows."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hub model id (``owner/name``)."""
    return bool(_HUB_ID.match(name or ""))


def read_card_data(model_dir: str | os.PathLike) -> dict:
    """The front matter of ``model_dir/README.md`` as a dict; ``{}`` when there is none or it does not parse."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return {}
    try:
        return ModelCard.load(path).data.to_dict()
    except Exception:  # a hand-written README without (valid) front matter
        return {}


def lineage(model: str | os.PathLike) -> tuple[list[str], str | None]:
    """``(hub ids, license)`` that a model made from ``model`` inherits: the id itself for a Hub id, else the
    ``base_model`` entries and ``license`` of the local directory's card (empty / None where unknown)."""
    name = str(model)
    if not Path(name).exists():
        return ([name] if is_hub_id(name) else []), None
    data = read_card_data(name)
    bases = data.get("base_model") or []
    return ([bases] if isinstance(bases, str) else list(bases)), data.get("license")


def cell(value: Any) -> str:
    """A markdown table cell: strings as they are, other values as JSON (keys sorted); ``|`` escaped."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|")


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table with one column per key (in first-seen order); ``""`` for no rows."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    if not columns:
        return ""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render(data: ModelCardData, title: str, body: str) -> ModelCard:
    """A card from its front matter (serialized by ``ModelCardData``) and a markdown body under ``# title``."""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n{body.strip()}\n")


def model_card(
    title: str,
    *,
    relation: str,
    bases: Sequence[str | os.PathLike],
    how: str,
    wer: Sequence[Mapping[str, Any]] | None = None,
    tags: Sequence[str] = (),
    record: Mapping[str, Any] | None = None,
) -> ModelCard:
    """The card of a model written by this project.

    Args:
        title: the heading (usually the output directory's name).
        relation: ``base_model_relation``: ``finetune`` or ``merge`` (see ``RELATIONS``).
        bases: the models it was made from (Hub ids or local directories), the anchor / base first.
        how: markdown saying how it was made (config, analogy, λ, data, steps).
        wer: rows of the WER table (e.g. ``{"test set": ..., "WER (%)": ...}``), or None when there is none.
        tags: extra Hub tags (``asr-analogy``, ``automatic-speech-recognition`` and ``relation`` are always set).
        record: a machine-readable summary kept in the front matter under ``asr_analogy``.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation {relation!r} is not one of {RELATIONS}")
    hub_ids: list[str] = []
    licenses = []
    for base in bases:
        ids, license_ = lineage(base)
        hub_ids += [i for i in ids if i not in hub_ids]
        licenses.append(license_)
    data = ModelCardData(
        base_model=hub_ids or None,
        base_model_relation=relation,
        library_name="transformers",
        license=licenses[0] if licenses else None,
        pipeline_tag="automatic-speech-recognition",
        tags=list(dict.fromkeys(["asr-analogy", "automatic-speech-recognition", relation, *tags])),
        asr_analogy=dict(record) if record else None,
    )
    made_from = "\n".join(f"- `{base}`" for base in bases)
    body = f"{how.strip()}\n\n## Made from\n\n{made_from}\n"
    if wer:
        body += f"\n## Word error rate\n\n{table(wer)}\n"
    return render(data, title, body)


def write_model_card(out_dir: str | os.PathLike, card: ModelCard) -> Path:
    """Write ``card`` as ``out_dir/README.md`` (into a directory that is still being written). Returns the path."""
    path = Path(out_dir) / CARD_FILE
    path.write_text(str(card), encoding="utf-8")
    return path


def derived_card_text(title: str, *, relation: str, bases: Sequence[str | os.PathLike], how: str,
                      extra: Mapping[str, Any] | None = None) -> str:
    """``model_card(...)`` as text, with a caller's ``extra``: ``note`` (markdown placed before ``how``), and
    ``wer``, ``tags``, ``record`` as in ``model_card``."""
    extra = dict(extra or {})
    note = str(extra.pop("note", "") or "").strip()
    unknown = set(extra) - {"wer", "tags", "record"}
    if unknown:
        raise ValueError(f"unknown model-card entries {sorted(unknown)} (known: note, wer, tags, record)")
    return str(model_card(title, relation=relation, bases=bases, how=f"{note}\n\n{how}" if note else how, **extra))

