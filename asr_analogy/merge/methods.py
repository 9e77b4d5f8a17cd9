"""Merge methods: named presets of one generalized task-arithmetic kernel, plus linear and SLERP.

    merged = base + lambda * normalize?( sum_i w_i * sparsify(theta_i - base, density_i) [elected sign] )

| preset            | sparsify                   | sign consensus | normalize | rescale  | paper                          |
|-------------------|----------------------------|----------------|-----------|----------|--------------------------------|
| task_arithmetic   | -                          | -              | false     | -        | Ilharco et al. 2023, 2212.04089 |
| magnitude_prune   | magnitude top-k            | -              | false     | false    | Yadav et al. 2023 (trim only)  |
| ties              | magnitude top-k            | sum            | true      | false    | Yadav et al. 2023, 2306.01708  |
| dare_linear       | random (DARE)              | -              | false     | true     | Yu et al. 2024, 2311.03099     |
| dare_ties         | random (DARE)              | sum            | false     | true     | Yu et al. 2024, 2311.03099     |
| breadcrumbs       | drop top gamma + bottom    | -              | false     | false    | Davari & Belilovsky 2023, 2312.06795 |
| breadcrumbs_ties  | drop top gamma + bottom    | sum            | false     | false    | Davari & Belilovsky 2023       |
| linear            | (weighted average of the models themselves, base is one input) | true | | Wortsman et al. 2022, 2203.05482 |
| slerp             | (spherical interpolation of base and one model, factor t)      |      | | Shoemake 1985                 |

Defaults, parameter names and arithmetic follow mergekit 0.1.5 so its YAML files give its numbers (same
operations in the same order: task arithmetic and linear merges come out bit-identical). Where this toolkit
differs:

* ``weight`` defaults to 1 (mergekit requires it).
* Magnitude ties at the cut: when several entries share exactly the k-th largest magnitude and only some fit,
  the lower flat index is kept; mergekit's order there is whatever ``torch.argsort`` returns (unspecified for
  equal values). Only entries whose magnitude equals the cut can differ (25 of 141M in a 3-model TIES merge).
* ``rescale: true`` with DARE multiplies the survivors by 1/density as in the DARE paper (mergekit 0.1.5
  instead matches the l1 norm; ``rescale: l1`` selects that); with magnitude sparsification ``rescale: true``
  matches the l1 norm in both.
* DARE masks come from a ``torch.Generator`` seeded from (``seed``, tensor name, model position, chunk index),
  so a merge is reproducible on one device type; mergekit draws from the global RNG.
* Without ``dtype``, half-precision models are merged in float32 (mergekit computes in their own dtype); the
  output keeps the input dtype unless ``out_dtype`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from asr_analogy.errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "gta" (generalized task arithmetic), "linear", "slerp"
    sparsify: str | None = None  # "magnitude", "random", "outliers"
    consensus: str | None = None  # "sum", "count"
    normalize: bool = False
    rescale: bool = False
    paper: str = ""

    @property
    def needs_base(self) -> bool:
        return self.kind in ("gta", "slerp")


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("linear", "linear", normalize=True, paper="Wortsman et al. 2022, Model soups, arXiv 2203.05482"),
        Method("task_arithmetic", "gta", paper="Ilharco et al. 2023, Editing Models with Task Arithmetic, arXiv 2212.04089"),
        Method("magnitude_prune", "gta", sparsify="magnitude", paper="Yadav et al. 2023 (TIES trim step), arXiv 2306.01708"),
        Method("ties", "gta", "magnitude", "sum", normalize=True, paper="Yadav et al. 2023, TIES-Merging, arXiv 2306.01708"),
        Method("dare_linear", "gta", "random", rescale=True, paper="Yu et al. 2024, DARE, arXiv 2311.03099"),
        Method("dare_ties", "gta", "random", "sum", rescale=True, paper="Yu et al. 2024, DARE + TIES, arXiv 2311.03099"),
        Method("breadcrumbs", "gta", "outliers", paper="Davari & Belilovsky 2023, Model Breadcrumbs, arXiv 2312.06795"),
        Method("breadcrumbs_ties", "gta", "outliers", "sum", paper="Davari & Belilovsky 2023 + TIES, arXiv 2312.06795"),
        Method("slerp", "slerp", paper="Shoemake 1985, Animating rotation with quaternion curves"),
    )
}

RESCALE_NORMS = ("inverse", "l1", "l2", "linf")


def rescale_norm(method: Method, value) -> str | None:
    """The concrete rescaling for a ``rescale`` setting: None, "inverse" (1/density), "l1", "l2" or "linf"."""
    if value is None:
        value = method.rescale
    if value is False or value == "false" or method.sparsify is None:
        return None
    if value is True or value == "true":
        return "inverse" if method.sparsify == "random" else "l1"
    if value in RESCALE_NORMS:
        return value
    raise ConfigError(f"rescale must be true, false or one of {', '.join(RESCALE_NORMS)}; got {value!r}")


def as_float(value, key: str, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: parameter '{key}' for tensor {name!r} must be a number, got {value!r}") from None
    return float(value)


def as_bool(value, key: str, name: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{where}: parameter '{key}' for tensor {name!r} must be true or false, got {value!r}")
