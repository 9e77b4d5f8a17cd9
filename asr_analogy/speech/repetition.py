"""The repetition guard of decoding: a transcript that ran to the token cap in a loop keeps one copy of the loop.

Whisper sometimes decodes a clip into one short token sequence repeated until the token cap ("press 0 to to to
…", hundreds of words for a six-word prompt). OpenAI's decoder detects such outputs by their compression ratio
and decodes again with sampling; this guard is a deterministic alternative for scoring: an output that reached
the cap without an end token, and whose tail is at least ``min_copies`` consecutive copies of one sequence, is
cut after the first copy. Outputs that ended on their own are never changed.
"""

from __future__ import annotations

from typing import Sequence


def cut_loop(tokens: Sequence[int], min_copies: int = 3) -> list[int]:
    """``tokens`` up to the end of the first copy of their repeating tail, when the tail holds at least
    ``min_copies`` copies of one sequence (the last copy may be partial); else ``tokens`` unchanged.

    Of every period that qualifies, the one that keeps the fewest tokens is used: ``a b c c c c`` → ``a b c``,
    ``a x y x y x y x`` → ``a x y``.
    """
    if min_copies < 2:
        raise ValueError(f"min_copies must be at least 2, got {min_copies}")
    tokens = list(tokens)
    n = len(tokens)
    keep = n
    for period in range(1, n // min_copies + 1):
        start = n - period  # tokens[start:] is periodic with this period; grow it backwards
        while start > 0 and tokens[start - 1] == tokens[start - 1 + period]:
            start -= 1
        if n - start >= min_copies * period:
            keep = min(keep, start + period)
    return tokens[:keep]


def guard(tokens: Sequence[int], reached_cap: bool, min_copies: int = 3) -> list[int]:
    """``cut_loop(tokens)`` for an output that reached the token cap, ``tokens`` as they are otherwise."""
    return cut_loop(tokens, min_copies) if reached_cap else list(tokens)
