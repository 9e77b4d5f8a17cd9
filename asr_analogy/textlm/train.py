"""A short, seeded fine-tune of a causal language model on rows of token ids (next-token loss), on CPU.

``finetune_lm(base_dir, blocks, out_dir, steps=40, ...)``: AdamW at a constant learning rate, ``batch_size``
rows a step drawn from a seeded permutation of ``blocks`` (a new permutation each pass), float32; only the
parameters whose names match ``trainable`` move (the others, and so their task-vector entries, stay at zero change). The result is
written atomically as a ``save_pretrained`` directory with the base's tokenizer files and ``train_log.json``
(the loss of every step, in nats per token, and the settings).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asr_analogy.errors import ConfigError


@dataclass(frozen=True)
class TrainSettings:
    """How long and how fast to fine-tune."""

    steps: int = 40  # optimizer steps
    learning_rate: float = 1e-4  # AdamW, constant
    batch_size: int = 4  # rows per step
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    seed: int = 0  # torch seed: row order (and nothing else is random)
    trainable: str | None = None  # regex: only parameters whose name matches it are trained (None: all)


def _batches(n_rows: int, settings: TrainSettings):
    """Row indices of each step: seeded permutations of range(n_rows), concatenated, cut into batches."""
    gen = torch.Generator().manual_seed(settings.seed)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(settings.steps):
        while order.numel() < settings.batch_size:
            order = torch.cat([order, torch.randperm(n_rows, generator=gen)])
        yield order[:settings.batch_size]
        order = order[settings.batch_size:]


def finetune_lm(base_dir: str | os.PathLike, blocks: torch.Tensor, out_dir: str | os.PathLike,
                settings: TrainSettings = TrainSettings(), *, progress: bool = True) -> Path:
    """Fine-tune the causal LM in ``base_dir`` on ``blocks`` (``LongTensor [rows, T]``) and write it to
    ``out_dir`` (refused when it exists). Returns ``out_dir``."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    from asr_analogy.io.atomic import atomic_dir
    from asr_analogy.io.checkpoint import copy_model_files

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model.train()
    params = [p for n, p in model.named_parameters() if settings.trainable is None or re.search(settings.trainable, n)]
    if not params:
        raise ConfigError(f"trainable {settings.trainable!r} matches no parameter of {base_dir}")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    losses = []
    for rows in tqdm(list(_batches(blocks.shape[0], settings)), desc="fine-tune", disable=not progress):
        batch = blocks[rows]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(round(loss.item(), 6))
    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        copy_model_files(base_dir, tmp, patterns=("tokenizer*", "special_tokens_map.json", "vocab.*", "merges.txt",
                                                   "chat_template.*", "added_tokens.json"))
        log = {"settings": asdict(settings), "rows": blocks.shape[0], "block_size": blocks.shape[1], "losses": losses}
        (Path(tmp) / "train_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    return Path(out_dir)
