"""Ways of adding the Synthetic2Real vector beyond one λ (``lambda.search``), each chosen on the pseudo-target.

| option    | the model                                  | chosen by                                                   |
|-----------|--------------------------------------------|-------------------------------------------------------------|
| (single)  | θ_C + λ·v                                  | λ of minimum pseudo-target WER on ``lambda.grid``           |
| encdec    | θ_C + λ_enc·v_enc + λ_dec·v_dec            | coordinate search from the single λ, one group at a time    |
| layers    | λ per group: lower encoder half, upper encoder half, decoder | the same coordinate search            |
| topk:F    | θ_C + λ·topk_F(v): per tensor, the F largest-magnitude entries of v kept, the rest 0 | λ on the grid |

The groups are ``asr_analogy.ops.param_groups``'s schemes. The coordinate search visits the groups in order;
for each it tries every grid value with the other groups fixed and keeps the best (ties keep the current value),
once over all groups, so it needs at most groups × (grid − 1) decodes after the single-λ curve (each group
skips the value it held when its turn came, which is already scored).
"""

from __future__ import annotations

from typing import Callable, Sequence

from asr_analogy.errors import ConfigError
from asr_analogy.ops.param_groups import SCHEMES, canonical


def parse_option(text: str) -> tuple:
    """``("encdec",)``, ``("layers",)`` or ``("topk", F)`` with 0 < F ≤ 1 (``ConfigError`` otherwise)."""
    name, _, arg = str(text).partition(":")
    if name in SCHEMES and not arg:
        return (name,)
    if name == "topk":
        try:
            fraction = float(arg)
        except ValueError:
            fraction = None
        if fraction is None or not 0 < fraction <= 1:
            raise ConfigError(f"lambda.search option {text!r}: topk needs a fraction in (0, 1], e.g. topk:0.2")
        return ("topk", fraction)
    raise ConfigError(f"unknown lambda.search option {text!r}; choose encdec, layers or topk:FRACTION")


def option_slug(text: str) -> str:
    """A file-name-safe name of an option: ``encdec``, ``layers``, ``topk0.2``."""
    opt = parse_option(text)
    return opt[0] if len(opt) == 1 else f"topk{opt[1]:g}"


def coordinate_search(score: Callable[[object], float], scheme: str, start: float, grid: Sequence[float]
                      ) -> tuple[object, list[dict]]:
    """Per-group λ by one pass of coordinate search: start with every group at ``start``; for each group of
    ``scheme`` in order, try each value of ``grid`` with the other groups fixed and keep the lowest ``score``
    (a WER; ties keep the current value). Returns the chosen scale (``param_groups.canonical``) and every
    point tried, ``{"scale", "wer"}``, in order."""
    current = {g: float(start) for g in SCHEMES[scheme]}
    best = score(canonical({"scheme": scheme, "values": current}))
    tried = [{"scale": canonical({"scheme": scheme, "values": current}), "wer": best}]
    for group in SCHEMES[scheme]:
        scored = current[group]  # this group's value at the last kept point: already scored
        for value in grid:
            if float(value) == scored:
                continue
            trial = canonical({"scheme": scheme, "values": {**current, group: float(value)}})
            wer = score(trial)
            tried.append({"scale": trial, "wer": wer})
            if wer < best - 1e-12:
                best, current = wer, {**current, group: float(value)}
    if not tried:
        raise ConfigError("coordinate search over an empty grid")
    return canonical({"scheme": scheme, "values": current}), tried
