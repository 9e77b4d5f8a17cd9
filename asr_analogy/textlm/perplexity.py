"""Perplexity of a causal language model on rows of token ids.

For rows ``x[i, 0..T-1]`` the model predicts every token from the ones before it; the negative log-likelihood
(natural log, nats) is summed over the ``T - 1`` predicted tokens of every row, and

    perplexity = exp(total NLL / number of predicted tokens).

A model that gives every one of ``V`` tokens the same probability has perplexity exactly ``V``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Perplexity:
    """The score of one model on one set of rows."""

    perplexity: float  # exp(nll_per_token)
    nll_per_token: float  # mean negative log-likelihood of a predicted token, in nats
    tokens: int  # predicted tokens: rows x (block_size - 1)

    def as_dict(self) -> dict:
        return asdict(self)


def load_causal_lm(model_dir: str | os.PathLike):
    """A ``transformers`` causal LM from ``model_dir`` in float32, in eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.eval()


def sequence_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Summed NLL (nats, float64 scalar) of ``ids[:, 1:]`` under ``logits[:, :-1]``. ``logits``:
    ``[rows, T, V]``; ``ids``: ``[rows, T]`` token ids."""
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).sum()


@torch.no_grad()
def perplexity(model, blocks: torch.Tensor, batch_size: int = 8) -> Perplexity:
    """Perplexity of ``model`` (a loaded causal LM or a model directory) on ``blocks`` (``LongTensor [rows, T]``,
    T >= 2), ``batch_size`` rows per forward pass."""
    if not isinstance(model, torch.nn.Module):
        model = load_causal_lm(model)
    if blocks.ndim != 2 or blocks.shape[1] < 2 or blocks.shape[0] == 0:
        raise ValueError(f"blocks of shape {list(blocks.shape)}: expected [rows >= 1, tokens >= 2]")
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, blocks.shape[0], batch_size):
        batch = blocks[start:start + batch_size]
        total += sequence_nll(model(input_ids=batch).logits, batch)
    count = blocks.shape[0] * (blocks.shape[1] - 1)
    nll = float(total) / count
    return Perplexity(math.exp(nll), nll, count)
