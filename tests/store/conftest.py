"""A tiny base model, two fine-tunes of it and their task-vector files (hand-made numbers)."""

import json

import pytest
import torch
from safetensors.torch import save_file


def write_model(path, tensors):
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"architectures": ["ToyModel"], "model_type": "toy"}))
    return path


@pytest.fixture
def tiny(tmp_path):
    """base, ft_a, ft_b (a 3x4 matrix, a bias, an integer buffer) and vectors va = ft_a - base, vb = ft_b - base."""
    from asr_analogy.merge import vector

    g = torch.Generator().manual_seed(0)
    base = {"enc.layers.0.w": torch.randn(3, 4, generator=g), "enc.layers.0.b": torch.randn(4, generator=g),
            "count": torch.tensor([3])}
    out = {"base": write_model(tmp_path / "base", base)}
    for k in ("a", "b"):
        moved = {n: (t + 0.1 * torch.randn(t.shape, generator=g) if t.is_floating_point() else t) for n, t in base.items()}
        out[f"ft_{k}"] = write_model(tmp_path / f"ft_{k}", moved)
        out[f"v{k}"] = vector(out[f"ft_{k}"], out["base"], tmp_path / f"v{k}.safetensors", progress=False)
    return out
