"""The systems scored on each target's real audio, in evaluation order.

Each system names the model it decodes (``"base"`` or a job key of the target's analogy) and, for θ_C + λ·v,
the vector id and λ (a number or a per-group scale). Per C system of the run (``finetune.c_variants``: c_init's
C first, then ``finetune.baselines``):

| system                          | model                                                                   |
|---------------------------------|-------------------------------------------------------------------------|
| ``C`` / ``C_<variant>``         | the C fine-tune (``C`` is c_init's: paper or tts)                       |
| ``syn2real`` / ``C_<v>_syn2real`` | θ_C + λ·(θ_B − θ_A), λ chosen on the pseudo-target                    |
| ``…_syn2real_<option>``         | the same with a ``lambda.search`` option (encdec, layers, topk0.2, …)    |
| ``ensemble`` / ``C_<v>_syn2real_ensemble`` | θ_C + λ·(the ensemble vector), with ``ensemble.enabled``     |

then ``best`` (the system of lowest pseudo-target WER over every C, option and ensemble: the method's pick,
made without target real audio), and the references ``upper_bound`` (trained on target real audio) and
``syn2real_oracle`` (λ picked on target real dev), labelled. Where λ is not chosen on the pseudo-target
(``lambda.mode`` fixed or oracle), the ensemble is scored on c_init's C only.
"""

from __future__ import annotations

from asr_analogy.analogy.config import RecipeConfig
from asr_analogy.analogy.options import option_slug
from asr_analogy.analogy.plan import Suite

C_LABELS = {"paper": "C_paper (source real+TTS, then target TTS)", "tts": "C_tts (target TTS from base)",
            "multi": "C_multi (source real+TTS and target TTS at once)"}
OPTION_LABELS = {"encdec": "encoder/decoder λ", "layers": "layer-group λ"}
REFERENCES = ("upper_bound", "syn2real_oracle")


def c_name(cfg: RecipeConfig, variant: str) -> str:
    """``C`` for c_init's C, else ``C_<variant>``."""
    return "C" if variant == cfg.finetune.primary_c else f"C_{variant}"


def analogy_name(cfg: RecipeConfig, variant: str, option: str | None = None) -> str:
    """The system name of C_variant + syn2real vector, with ``option`` (a ``lambda.search`` entry) or not."""
    head = "syn2real" if variant == cfg.finetune.primary_c else f"C_{variant}_syn2real"
    return head if option is None else f"{head}_{option_slug(option)}"


def ensemble_name(cfg: RecipeConfig, variant: str) -> str:
    """The system name of C_variant + the ensemble vector: ``ensemble`` for c_init's C."""
    return "ensemble" if variant == cfg.finetune.primary_c else f"C_{variant}_syn2real_ensemble"


def system_of(cfg: RecipeConfig, variant: str, option: str | None) -> str:
    """The system of a pseudo-target choice: ``option`` is None (single λ), a ``lambda.search`` entry or
    ``"ensemble"``."""
    return ensemble_name(cfg, variant) if option == "ensemble" else analogy_name(cfg, variant, option)


def has_choice(cfg: RecipeConfig) -> bool:
    """Whether the pseudo-target chooses among several ways of adding the vector (C variants, ``lambda.search``
    options, the ensemble), and so the run has a ``best`` system."""
    return len(cfg.finetune.c_variants) > 1 or bool(cfg.lambda_.search) or cfg.ensemble.enabled


def adds_a_vector(name: str) -> bool:
    """Whether a system is some C plus a Synthetic2Real vector (single, option or ensemble)."""
    return "syn2real" in name or name == "ensemble"


def _option_label(option: str) -> str:
    return OPTION_LABELS.get(option, option.replace("topk:", "top-") + " sparse")


def names_and_labels(cfg: RecipeConfig) -> list[tuple[str, str]]:
    """Every system the run can score, ``(name, label)`` in table order (methods, then references)."""
    out = [("base", "base model")]
    for v in cfg.finetune.c_variants:
        out.append((c_name(cfg, v), C_LABELS[v]))
        short = C_LABELS[v].split(" ")[0]
        out.append((analogy_name(cfg, v), f"{short} + syn2real"))
        for opt in cfg.lambda_.search:
            out.append((analogy_name(cfg, v, opt), f"{short} + syn2real, {_option_label(opt)}"))
        if cfg.ensemble.enabled:
            out.append((ensemble_name(cfg, v), f"{short} + syn2real ensemble"))
    if has_choice(cfg):
        out.append(("best", "best syn2real (pseudo-target pick)"))
    out.append(("upper_bound", "upper bound (target real)"))
    out.append(("syn2real_oracle", "C + syn2real, oracle λ"))
    return out


def labels(cfg: RecipeConfig) -> dict[str, str]:
    return dict(names_and_labels(cfg))


def table_order(cfg: RecipeConfig) -> list[str]:
    return [n for n, _ in names_and_labels(cfg)]


def planned(cfg: RecipeConfig) -> list[str]:
    """The systems the dry run lists."""
    skip = set()
    if not cfg.finetune.upper_bound:
        skip.add("upper_bound")
    if not cfg.lambda_.report_oracle or cfg.lambda_.mode == "oracle":
        skip.add("syn2real_oracle")
    if cfg.lambda_.mode != "pseudo_target":  # best is the pseudo-target's pick
        skip.add("best")
    return [n for n in table_order(cfg) if n not in skip]


def _vector_of(vector_ids: dict, option: str | None) -> str:
    if option is not None and option.startswith("topk:"):
        return vector_ids[option]
    return vector_ids["syn2real"]


def systems_for(cfg: RecipeConfig, suite: Suite, selection: dict, vector_ids: dict) -> list[dict]:
    """The systems scored on a target: ``{"system", "model", ["vector", "lambda"]}`` each, in evaluation order.

    ``suite``: the target's main analogy; ``selection``: its ``lambda/<target>.json``; ``vector_ids``: the
    suite's vector ids (``RecipeContext.suite_vectors``).
    """
    out = [{"system": "base", "model": "base"}]
    chosen = selection.get("variants", {})
    for v in cfg.finetune.c_variants:
        c_key = suite.variants.get(v, suite.C if v == cfg.finetune.primary_c else None)
        if c_key is None:
            continue
        out.append({"system": c_name(cfg, v), "model": c_key})
        single = chosen.get(v, {}).get("single", {}).get("scale", selection["value"])
        if v != cfg.finetune.primary_c and v not in chosen:
            continue
        out.append({"system": analogy_name(cfg, v), "model": c_key, "vector": vector_ids["syn2real"],
                    "lambda": single})
        for opt in cfg.lambda_.search:
            pick = chosen.get(v, {}).get(opt)
            if pick is not None:
                out.append({"system": analogy_name(cfg, v, opt), "model": c_key,
                            "vector": _vector_of(vector_ids, opt), "lambda": pick["scale"]})
        if vector_ids.get("ensemble"):
            pick = chosen.get(v, {}).get("ensemble")
            if pick is not None or v == cfg.finetune.primary_c:
                scale = pick["scale"] if pick is not None else selection.get("value_ensemble", selection["value"])
                out.append({"system": ensemble_name(cfg, v), "model": c_key, "vector": vector_ids["ensemble"],
                            "lambda": scale})
    best = selection.get("best")
    if best is not None:
        src = next(s for s in out if s["system"] == system_of(cfg, best["variant"], best["option"]))
        out.append({**src, "system": "best", "picked": src["system"]})
    if suite.UB and cfg.finetune.upper_bound:
        out.append({"system": "upper_bound", "model": suite.UB})
    if "oracle" in selection and cfg.lambda_.mode != "oracle" and cfg.lambda_.report_oracle:
        out.append({"system": "syn2real_oracle", "model": suite.C, "vector": vector_ids["syn2real"],
                    "lambda": selection["oracle"]["value"]})
    return out

