"""Fixtures for merge tests: tiny hand-written checkpoints and a tiny random Llama (built once)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


def declared(method: str, **params) -> dict:
    """The parameters among ``params`` that merge method ``method`` takes (the others would be refused)."""
    from asr_analogy.merge import METHODS

    return {k: v for k, v in params.items() if METHODS[method].param(k) is not None}


def write_model(path: Path, tensors: dict, shard_size=None) -> Path:
    """A model directory with ``model.safetensors`` (or shards) and a config.json."""
    from asr_analogy.io.checkpoint import save_checkpoint

    if shard_size:
        save_checkpoint(tensors, path, shard_size=shard_size)
    else:
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"model_type": "toy", "torch_dtype": "float32"}))
    return path


@pytest.fixture
def models(tmp_path):
    """base, a, b, c: one float tensor of 4 entries and an integer buffer (hand-computed tests)."""
    w = {
        "base": [1.0, 2.0, 3.0, 4.0],
        "a": [2.0, 2.0, 1.0, 4.5],  # delta [1, 0, -2, 0.5]
        "b": [0.5, 3.0, 4.0, 2.0],  # delta [-0.5, 1, 1, -2]
        "c": [0.0, 1.0, 3.5, 3.5],  # delta [-1, -1, 0.5, -0.5]
    }
    out = {}
    for i, (name, values) in enumerate(w.items()):
        out[name] = write_model(
            tmp_path / name, {"layer.w": torch.tensor(values), "layer.count": torch.tensor([i + 1])}
        )
    return out


def save_tiny_llamas(root: Path) -> dict[str, Path]:
    """A 2-layer Llama (hidden 64) ``base`` and two fine-tunes ``ft0``, ``ft1`` perturbed from it (std 0.01),
    saved with save_pretrained under ``root``; returns their folders by name."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False)
    base = LlamaForCausalLM(cfg)
    base.save_pretrained(root / "base")
    dirs = {"base": root / "base"}
    for i in range(2):
        gen = torch.Generator().manual_seed(i + 1)
        with torch.no_grad():
            state = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in base.state_dict().items()}
        ft = LlamaForCausalLM(cfg)
        ft.load_state_dict(state)
        ft.save_pretrained(root / f"ft{i}")
        dirs[f"ft{i}"] = root / f"ft{i}"
    return dirs


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """``save_tiny_llamas`` once per session."""
    return save_tiny_llamas(tmp_path_factory.mktemp("llama"))
