"""Hugging Face model directories: weights plus the config / tokenizer / processor files that make
``from_pretrained`` work. ``save_checkpoint`` writes one atomically (temp dir beside OUT, renamed at the end)."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from asr_analogy.errors import CheckpointError
from asr_analogy.io.atomic import atomic_dir, atomic_file
from asr_analogy.io.checkpoint.format import TensorSpec
from asr_analogy.io.checkpoint.writer import (
    ShardedWriter,
    parse_size,
    plan_shards,
    shard_file_names,
    write_index,
    write_safetensors_file,
)

# Files copied beside the weights so the output loads with ``from_pretrained`` (glob patterns).
MODEL_SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "normalizer.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "chat_template.*",
    "spiece.model",
    "sentencepiece*.model",
)


def copy_model_files(src: str | os.PathLike, dst: str | os.PathLike, patterns: Sequence[str] = MODEL_SIDE_FILES) -> list[str]:
    """Copy config / tokenizer / processor / generation files from model directory ``src`` into ``dst``.

    Weight files are never copied. Returns the names copied (none when ``src`` is a file).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        return []
    copied = []
    for item in sorted(src.iterdir()):
        if not item.is_file() or item.name.endswith((".safetensors", ".bin", ".index.json", ".pt", ".pth")):
            continue
        if any(fnmatch.fnmatch(item.name, p) for p in patterns):
            shutil.copy2(item, dst / item.name)
            copied.append(item.name)
    return copied


def set_config_dtype(out_dir: str | os.PathLike, dtype: torch.dtype) -> None:
    """Record the floating dtype of the written weights in ``out_dir/config.json`` (``torch_dtype`` and
    ``dtype``, where present). No-op without a readable config.json."""
    cfg_path = Path(out_dir) / "config.json"
    if not cfg_path.is_file():
        return
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return
    name = str(dtype).removeprefix("torch.")
    changed = False
    for key in ("torch_dtype", "dtype"):
        if key in cfg and cfg[key] != name:
            cfg[key] = name
            changed = True
    if changed:
        with atomic_file(cfg_path) as fh:
            json.dump(cfg, fh, indent=2)
            fh.write("\n")


def save_checkpoint(
    tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    out_dir: str | os.PathLike,
    *,
    copy_files_from: str | os.PathLike | None = None,
    shard_size: int | str | None = "5GB",
    force: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write tensors as a Hugging Face checkpoint directory, atomically (temp dir beside ``out_dir``).

    ``tensors`` is a mapping (streamed shard by shard, nothing copied) or an iterator of ``(name, tensor)``
    (buffered up to one shard, each shard written when full). Config/tokenizer/processor files are copied from
    ``copy_files_from`` when given. Refuses an existing ``out_dir`` unless ``force``.
    """
    limit = parse_size(shard_size)
    with atomic_dir(out_dir, force=force) as tmp:
        if isinstance(tensors, Mapping):
            specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]
            writer = ShardedWriter(tmp, specs, shard_size=limit, metadata=metadata)
            for name in writer.order:
                writer.write(name, tensors[name])
            writer.close()
        else:
            _save_buffered(tensors, tmp, limit, metadata)
        if copy_files_from is not None:
            copy_model_files(copy_files_from, tmp)
            floats = {t.dtype for t in (tensors.values() if isinstance(tensors, Mapping) else []) if t.is_floating_point()}
            if len(floats) == 1:
                set_config_dtype(tmp, floats.pop())
    return Path(out_dir)


def _save_buffered(items: Iterable[tuple[str, torch.Tensor]], tmp: Path, limit: int | None, metadata) -> None:
    """Buffer ``(name, tensor)`` pairs until a shard is full, write it, repeat; then name and index them."""
    written: list[tuple[Path, list[TensorSpec]]] = []
    buffer: dict[str, torch.Tensor] = {}
    size = 0
    seen: set[str] = set()

    def flush() -> None:
        nonlocal buffer, size
        if not buffer:
            return
        part = tmp / f".part-{len(written):05d}.safetensors"
        specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in buffer.items()]
        write_safetensors_file(part, specs, ((s.name, buffer[s.name]) for s in plan_shards(specs, None)[0]), metadata=metadata)
        written.append((part, specs))
        buffer, size = {}, 0

    for name, tensor in items:
        if name in seen:
            raise CheckpointError(f"tensor {name!r} given twice")
        seen.add(name)
        nbytes = tensor.numel() * tensor.element_size()
        if limit and buffer and size + nbytes > limit:
            flush()
        buffer[name] = tensor.detach().cpu()
        size += nbytes
    flush()
    if not written:
        write_safetensors_file(tmp / "model.safetensors", [], [], metadata=metadata)
        return
    names = shard_file_names(len(written))
    for (part, _), final in zip(written, names):
        os.replace(part, tmp / final)
    if len(written) > 1:
        write_index(tmp, [specs for _, specs in written], names)
