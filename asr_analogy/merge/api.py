"""Public merge functions: ``merge`` (a YAML/dict config) and ``analogy_merge`` (theta_C + lambda * combine of
pair vectors theta_B - theta_A)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from asr_analogy.errors import ConfigError
from asr_analogy.io.atomic import refuse_overlap
from asr_analogy.io.model_card import CARD_FILE, derived_card_text, is_hub_id
from asr_analogy.merge.config import MergeConfig, load_merge_config, parse_merge_config, parse_dtype
from asr_analogy.merge.plan import MergePlan, TensorPlan, plan_merge
from asr_analogy.merge.stream import Input, Streamer, refuse_existing, resolve_device, stream_to_checkpoint, torch_threads


def merge(
    config_or_path: str | os.PathLike | MergeConfig | dict[str, Any],
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    shard_size: int | str | None = "5GB",
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
    out_dtype: str | torch.dtype | None = None,
    progress: bool = True,
    chunk_elements: int | None = None,
    threads: int | None = 1,
    provenance: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
) -> Path:
    """Merge checkpoints as described by a config (YAML path, mapping or ``MergeConfig``) into ``out_dir``.

    Streams tensor by tensor (peak memory O(models x chunk)), writes shards of at most ``shard_size``
    atomically, copies config/tokenizer files from the base (or ``copy_files_from``) and records the config
    as ``merge_config.yaml``. A merge of ``vector:`` entries only writes a task vector (``out`` a
    ``.safetensors`` file or a directory; see ``merge.config``); ``provenance`` adds to (or replaces) entries
    of the provenance it records (e.g. ``{"kind": "ensemble"}``). ``device``: "cpu", "cuda", "cuda:N" or "auto". ``threads``: torch threads for
    the CPU arithmetic (the default 1 leaves the other cores to the background writer and to other jobs;
    None keeps torch's setting); ``chunk_elements``: entries per streamed chunk (default 2^18 on CPU). ``dtype`` (overrides the config's
    ``dtype``): inputs are converted to it and merged in it, and it is the output dtype unless ``out_dtype``.
    Refuses an existing ``out_dir`` unless ``force``. Returns ``out_dir``. A merged model (not a task vector)
    gets a model card, ``README.md`` (``io.model_card``: relation ``merge``, the config); ``card`` adds to it
    (``note``, ``wer`` rows, ``tags``).
    """
    if isinstance(config_or_path, MergeConfig):
        cfg, source = config_or_path, "<config>"
    elif isinstance(config_or_path, dict):
        cfg, source = parse_merge_config(config_or_path), "<config>"
    else:
        cfg, source = load_merge_config(config_or_path), str(config_or_path)
    refuse_existing(out_dir, force)
    dev = resolve_device(device)
    cdtype = parse_dtype(dtype) or cfg.torch_dtype
    odtype = parse_dtype(out_dtype, "out_dtype") or cfg.torch_out_dtype
    streamer = Streamer(dev, chunk_elements)
    with torch_threads(threads if dev.type == "cpu" else None), ExitStack() as stack:
        plan = plan_merge(cfg, stack, compute_dtype=cdtype, out_dtype=odtype, source=source, provenance=provenance)
        inputs = {plan.anchor.path, *(i.path for t in plan.tensors for i in t.inputs)}
        if plan.copy_files_from is not None:
            inputs.add(Path(plan.copy_files_from))
        refuse_overlap(out_dir, sorted(inputs) + ([] if source == "<config>" else [source]))
        by_name = {t.name: t for t in plan.tensors}
        extra_files = {"merge_config.yaml": cfg.to_yaml()}
        if Path(out_dir).suffix != ".safetensors" and not any(t.delta_only for t in plan.tensors):
            extra_files[CARD_FILE] = _merge_card(out_dir, plan, cfg, card)
        return stream_to_checkpoint(
            out_dir,
            plan.specs,
            lambda name: _produce(by_name[name], streamer),
            force=force,
            shard_size=shard_size,
            metadata=plan.metadata,
            copy_files_from=plan.copy_files_from,
            extra_files=extra_files,
            progress=progress,
        )


def _merge_card(out_dir, plan: MergePlan, cfg: MergeConfig, card: Mapping[str, Any] | None) -> str:
    """The model card of a merged model: its inputs (the anchor first) and its config."""
    inputs = [plan.anchor] + [i for t in plan.tensors for i in t.inputs]
    bases = list(dict.fromkeys(_card_ref(i) for i in inputs))
    how = (f"Merged with asr-analogy (`{plan.metadata.get('merge_method', 'merge')}`) from the config below "
           f"(also in `merge_config.yaml`):\n\n```yaml\n{cfg.to_yaml().rstrip()}\n```")
    return derived_card_text(Path(out_dir).name, relation="merge", bases=bases, how=how, extra=card)


def _card_ref(model: Input) -> str:
    """How a card names an input: its Hub id when it was fetched from the Hub, else its local path."""
    hub_id = model.label.partition("@")[0]
    return hub_id if "snapshots" in model.path.parts and is_hub_id(hub_id) else str(model.path)


def _produce(tp: TensorPlan, streamer: Streamer):
    """The chunks of one planned output tensor: its method's kernel, or the anchor's tensor copied (zeros in
    a merge of task vectors only: a tensor left out of the merge does not move)."""
    if tp.method is None and tp.delta_only:
        return (streamer.ring(b - a, tp.out_dtype).zero_() for a, b in streamer.ranges(tp.anchor.reader.numel(tp.name)))
    if tp.method is None:
        return streamer.copy(tp.name, tp.anchor, tp.out_dtype)
    return tp.method.kernel(tp, streamer)


def analogy_merge(
    c: str | os.PathLike,
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    lam: float,
    out_dir: str | os.PathLike,
    *,
    method: str = "task_arithmetic",
    density: float | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    force: bool = False,
    weights: Sequence[float] | None = None,
    seed: int = 0,
    dtype: str | torch.dtype | None = None,
    out_dtype: str | torch.dtype | None = None,
    shard_size: int | str | None = "5GB",
    device: str | torch.device | None = "cpu",
    progress: bool = True,
) -> Path:
    """theta_D = theta_C + lam * combine_i(theta_Bi - theta_Ai), streamed to ``out_dir``.

    ``pairs`` = [(A_i, B_i), ...] (e.g. A = source-domain synthetic fine-tune, B = source-domain real
    fine-tune, C = target-domain synthetic fine-tune, all from one base). ``combine`` is the mean of the pair
    vectors for ``task_arithmetic`` (weights, default 1 each, normalized), or the named kernel preset over
    them (``ties``, ``dare_linear``, ``dare_ties``, ``magnitude_prune``, ``breadcrumbs``, ...) with
    ``density``. ``include``/``exclude`` regexes restrict which tensors change; the rest is copied from C.
    """
    if not pairs:
        raise ConfigError("analogy_merge needs at least one (a, b) pair")
    weights = list(weights) if weights is not None else [1.0] * len(pairs)
    if len(weights) != len(pairs):
        raise ConfigError(f"analogy_merge: {len(weights)} weights for {len(pairs)} pairs")
    spec: dict[str, Any] = {
        "c": str(c),
        "pairs": [{"a": str(a), "b": str(b), "weight": w} for (a, b), w in zip(pairs, weights)],
        "lambda": lam,
        "method": method,
    }
    if density is not None:
        spec["density"] = density
    data: dict[str, Any] = {"analogy": spec, "seed": seed}
    if include:
        data["include"] = list(include)
    if exclude:
        data["exclude"] = list(exclude)
    return merge(
        data, out_dir, force=force, shard_size=shard_size, device=device, dtype=dtype, out_dtype=out_dtype, progress=progress
    )
