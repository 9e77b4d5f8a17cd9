"""Parameter groups of a transformer checkpoint, by name, for scaling a task vector per group.

A *scheme* splits the floating tensors of a model into named groups:

| scheme   | groups                                                                                   |
|----------|------------------------------------------------------------------------------------------|
| encdec   | ``encoder`` (every name with an ``encoder`` component), ``decoder`` (everything else)    |
| layers   | ``encoder_low`` (encoder embeddings/convolutions and its first ⌈n/2⌉ layers), ``encoder_high`` (the other layers and the final norm), ``decoder`` |

Layer indices are read from the ``layers.<i>.`` component of a name (Whisper, BART, Llama, most Hugging Face
models); ``n`` is the number of encoder layers found among the names. For a decoder-only model every tensor is
in ``decoder``.

A *scale* is a number (the same λ everywhere) or ``{"scheme": ..., "values": {group: λ}}``; ``scales_for``
gives each tensor its λ, and ``canonical`` makes equal scales compare equal (a per-group scale whose groups all
hold the same λ is that number).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

from asr_analogy.errors import ConfigError

SCHEMES = {"encdec": ("encoder", "decoder"), "layers": ("encoder_low", "encoder_high", "decoder")}
_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def _is_encoder(name: str) -> bool:
    return "encoder" in name.split(".")


def encoder_layer_count(names: Iterable[str]) -> int:
    """Number of encoder layers: one more than the largest ``layers.<i>`` index among encoder names (0 if none)."""
    top = -1
    for name in names:
        m = _LAYER.search(name)
        if m and _is_encoder(name):
            top = max(top, int(m.group(1)))
    return top + 1


def group_of(name: str, scheme: str, n_encoder_layers: int) -> str:
    """The group of tensor ``name`` under ``scheme`` (``ConfigError`` for an unknown scheme)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown parameter-group scheme {scheme!r}; choose {', '.join(SCHEMES)}")
    if not _is_encoder(name):
        return "decoder"
    if scheme == "encdec":
        return "encoder"
    m = _LAYER.search(name)
    if m is None:  # embeddings and convolutions come before the layers, the final norm after them
        parts = name.split(".")
        return "encoder_high" if len(parts) > 1 and "norm" in parts[-2] else "encoder_low"
    return "encoder_low" if int(m.group(1)) < math.ceil(n_encoder_layers / 2) else "encoder_high"


def check_scale(scale) -> None:
    """``ConfigError`` unless ``scale`` is a finite number or a per-group scale of a known scheme."""
    if isinstance(scale, Mapping):
        scheme, values = scale.get("scheme"), scale.get("values")
        if scheme not in SCHEMES or not isinstance(values, Mapping):
            raise ConfigError(f"a per-group scale needs scheme ({', '.join(SCHEMES)}) and values, got {dict(scale)}")
        missing = [g for g in SCHEMES[scheme] if g not in values]
        unknown = [g for g in values if g not in SCHEMES[scheme]]
        if missing or unknown:
            raise ConfigError(f"scheme {scheme} has groups {', '.join(SCHEMES[scheme])}; "
                              + (f"missing {missing}" if missing else f"unknown {unknown}"))
        bad = [v for v in values.values() if isinstance(v, bool) or not isinstance(v, (int, float))
               or not math.isfinite(v)]
    else:
        ok = isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
        bad = [] if ok else [scale]
    if bad:
        raise ConfigError(f"every scale must be a finite number, got {bad[0]!r}")


def check_group_scale(scale):
    """``scale`` itself when it is a per-group scale (``{"scheme", "values"}`` of a known scheme, every group a
    finite number); ``ConfigError`` otherwise, a plain number included."""
    if not isinstance(scale, Mapping) or "scheme" not in scale:
        raise ConfigError(f"a per-group scale needs scheme ({', '.join(SCHEMES)}) and values {{group: λ}}, "
                          f"got {scale!r}")
    check_scale(scale)
    return scale


def canonical(scale):
    """A number for a number or a per-group scale whose groups agree; else ``{"scheme", "values"}`` with the
    values in the scheme's group order (so equal scales are equal dicts and serialize alike)."""
    check_scale(scale)
    if not isinstance(scale, Mapping):
        return float(scale)
    values = [float(scale["values"][g]) for g in SCHEMES[scale["scheme"]]]
    if len(set(values)) == 1:
        return values[0]
    return {"scheme": scale["scheme"], "values": dict(zip(SCHEMES[scale["scheme"]], values))}


def scales_for(names: Iterable[str], scale) -> dict[str, float]:
    """Each name's λ under ``scale`` (a number, or a per-group scale)."""
    names = list(names)
    scale = canonical(scale)
    if not isinstance(scale, dict):
        return {n: scale for n in names}
    n_enc = encoder_layer_count(names)
    return {n: scale["values"][group_of(n, scale["scheme"], n_enc)] for n in names}


def describe_scale(scale) -> str:
    """``0.4`` or ``encoder 0.6, decoder 0.2``."""
    scale = canonical(scale)
    if not isinstance(scale, dict):
        return f"{scale:g}"
    return ", ".join(f"{g} {v:g}" for g, v in scale["values"].items())
