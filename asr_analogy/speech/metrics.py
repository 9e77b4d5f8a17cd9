"""Word and character error rates of transcripts, per group, with a bootstrap confidence interval.

The same text normalizer is applied to references and hypotheses, always. Rates are corpus-level: the sum of
errors (substitutions + deletions + insertions) over all utterances divided by the sum of reference words
(characters for CER), as jiwer computes them, not a mean of per-utterance rates.

Units: the JSON summary and the returned dict hold WER and CER as **fractions** (0.052 = 5.2 %); the printed
table (``format_table``) shows **percent**.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from asr_analogy.errors import ConfigError, ManifestError
from asr_analogy.io.atomic import atomic_file
from asr_analogy.io.manifest import read_manifest

NORMALIZERS = ("whisper_english", "basic", "lower_punct", "none")
"""Names accepted by ``normalize_text`` and ``evaluate``."""

NO_GROUP = "(none)"
"""Group name of records that lack the ``by`` field."""

# lower_punct: a small, explicit normalizer. Applied in order, after lower-casing.
LOWER_PUNCT_RULES: list[tuple[str, str]] = [
    (r"[\u2018\u2019\u02bc]", "'"),  # curly and modifier apostrophes -> straight apostrophe
    (r"(?<![a-z0-9])'|'(?![a-z0-9])", " "),  # apostrophes not inside a word (quotes) -> space
    (r"(?<=\d)[.,](?=\d)", "\0"),  # protect decimal points/thousands separators between digits
    (r"[^\w\s'\0]", " "),  # any other punctuation or symbol -> space
    (r"_", " "),  # underscores count as punctuation (\w includes them)
    (r"\0", "."),  # restore protected separators as '.'
    (r"\s+", " "),  # collapse runs of whitespace
]


def _lower_punct(text: str) -> str:
    s = text.lower()
    for pattern, repl in LOWER_PUNCT_RULES:
        s = re.sub(pattern, repl, s)
    return s.strip()


@lru_cache(maxsize=8)
def _english_spelling(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"English spelling mapping {path} cannot be read: {exc}") from None
    if not isinstance(mapping, dict):
        raise ConfigError(f"English spelling mapping {path} must be a JSON object of word -> word")
    return mapping


@lru_cache(maxsize=8)
def get_normalizer(name: str, english_spelling: str | None = None) -> Callable[[str], str]:
    """The normalizer ``name`` as a function str -> str.

    - ``whisper_english``: transformers' ``EnglishTextNormalizer`` (Whisper's English normalizer: lower case,
      contractions expanded, numbers standardized, fillers and bracketed text removed). Its British→American
      spelling mapping is read from ``english_spelling`` (a Whisper ``normalizer.json``) when given, else empty
      (the mapping ships with hub tokenizers, not with transformers).
    - ``basic``: transformers' ``BasicTextNormalizer`` (lower case, bracketed text and symbols removed).
    - ``lower_punct``: lower case and punctuation removed per ``LOWER_PUNCT_RULES``.
    - ``none``: the text as it is (words split on whitespace).
    """
    if name == "whisper_english":
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        norm = EnglishTextNormalizer(_english_spelling(english_spelling))
        return lambda s: norm(s).strip()
    if name == "basic":
        from transformers.models.whisper.english_normalizer import BasicTextNormalizer

        basic = BasicTextNormalizer()
        return lambda s: basic(s).strip()
    if name == "lower_punct":
        return _lower_punct
    if name == "none":
        return lambda s: s
    raise ConfigError(f"unknown normalizer {name!r}; choose one of {', '.join(NORMALIZERS)}")


def normalize_text(text: str, normalizer: str = "whisper_english", *, english_spelling: str | None = None) -> str:
    """Normalize ``text`` with the named normalizer (see ``get_normalizer``)."""
    return get_normalizer(normalizer, english_spelling)(text)


def _counts(refs: list[str], hyps: list[str], unit: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per-utterance (errors, reference length) in words or characters, and corpus S/D/I totals."""
    import jiwer

    out = jiwer.process_words(refs, hyps) if unit == "word" else jiwer.process_characters(refs, hyps)
    errors = np.zeros(len(refs), dtype=np.int64)
    for i, chunks in enumerate(out.alignments):
        for c in chunks:
            if c.type in ("substitute", "delete"):
                errors[i] += c.ref_end_idx - c.ref_start_idx
            elif c.type == "insert":
                errors[i] += c.hyp_end_idx - c.hyp_start_idx
    lengths = np.array([len(r) for r in out.references], dtype=np.int64)
    totals = {"substitutions": out.substitutions, "deletions": out.deletions, "insertions": out.insertions}
    assert errors.sum() == sum(totals.values()), "alignment counts disagree with jiwer's totals"
    return errors, lengths, totals


def _rate(errors: np.ndarray, lengths: np.ndarray) -> float | None:
    n = int(lengths.sum())
    return float(errors.sum()) / n if n else None


def bootstrap_ci(
    errors: np.ndarray, lengths: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the corpus error rate, resampling utterances with replacement.

    ``errors``, ``lengths``: per-utterance counts, shape (n_utterances,). Returns (low, high) as fractions, or
    None when there are no utterances, no resamples, or no reference words at all. Resamples that happen to
    draw only empty references are left out. Deterministic for a given ``seed``.
    """
    n = len(errors)
    if n == 0 or n_resamples <= 0 or lengths.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    rates = np.empty(n_resamples, dtype=np.float64)
    step = max(1, 2_000_000 // n)  # resamples per chunk, bounding memory to ~16 MB of indices
    for start in range(0, n_resamples, step):
        k = min(step, n_resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        num, den = errors[idx].sum(axis=1), lengths[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[start : start + k] = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    rates = rates[np.isfinite(rates)]
    if rates.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(rates, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _summary(idx: np.ndarray, w_err, w_len, c_err, c_len, failed, bootstrap: int, seed: int) -> dict:
    return {
        "n_utterances": int(len(idx)),
        "n_ref_words": int(w_len[idx].sum()),
        "n_word_errors": int(w_err[idx].sum()),
        "n_ref_chars": int(c_len[idx].sum()),
        "n_char_errors": int(c_err[idx].sum()),
        "n_empty_references": int((w_len[idx] == 0).sum()),
        "n_failed_clips": int(failed[idx].sum()),
        "wer": _rate(w_err[idx], w_len[idx]),
        "cer": _rate(c_err[idx], c_len[idx]),
        "wer_ci95": bootstrap_ci(w_err[idx], w_len[idx], bootstrap, seed),
        "cer_ci95": bootstrap_ci(c_err[idx], c_len[idx], bootstrap, seed),
    }


def evaluate(
    hyps_path_or_records: str | os.PathLike | Iterable[dict],
    out_json: str | os.PathLike | None = None,
    *,
    normalizer: str = "whisper_english",
    by: str | None = "domain",
    bootstrap: int = 1000,
    seed: int = 0,
    english_spelling: str | None = None,
) -> dict:
    """Score transcripts: corpus WER and CER, a per-group table and bootstrap 95 % intervals.

    Input: a JSONL file (as written by ``transcribe``) or records, each with ``text`` (reference) and
    ``hypothesis``. The same ``normalizer`` is applied to both. ``by`` names the field to group on (records
    without it fall in ``"(none)"``; ``None`` for no groups). ``bootstrap`` resamples of utterances (0 to
    skip) with ``seed``.

    Returns (and writes to ``out_json`` atomically, when given) a dict with ``wer``, ``cer`` (fractions; None
    when there are no reference words), ``wer_ci95``/``cer_ci95`` ((low, high) fractions or None),
    ``n_utterances``, counts of reference words/characters and errors (``substitutions``, ``deletions``,
    ``insertions`` over words), ``n_empty_references`` (utterances whose normalized reference is empty: their
    insertions count as errors, they add nothing to the denominator), ``n_failed_clips`` (records with an
    ``error`` field, scored with their empty hypothesis) and ``per_group`` {group: same fields}. CER counts
    characters of the normalized text, spaces between words included.
    """
    if isinstance(hyps_path_or_records, (str, os.PathLike)):
        source = str(hyps_path_or_records)
        records = read_manifest(hyps_path_or_records, resolve_paths=False)
    else:
        source = None
        records = list(hyps_path_or_records)
    where = source or "records"
    if int(bootstrap) < 0:
        raise ConfigError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    if not records:
        raise ManifestError(f"{where}: no record to score (the file is empty)")
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        uid = rec.get("id")
        if uid is not None and seen.setdefault(str(uid), i) != i:
            raise ManifestError(f"{where}: records #{seen[str(uid)] + 1} and #{i + 1} share the id {uid!r}; "
                                "each utterance must be scored once (duplicate id)")
    for i, rec in enumerate(records):
        if not isinstance(rec.get("hypothesis"), str):
            raise ManifestError(f"{where}: record #{i + 1} has no string field 'hypothesis' (run transcribe first)")
        if not isinstance(rec.get("text"), str):
            raise ManifestError(f"{where}: record #{i + 1} has no string field 'text' (the reference)")
    norm = get_normalizer(normalizer, english_spelling)
    refs = [norm(r["text"]) for r in records]
    hyps = [norm(r["hypothesis"]) for r in records]
    w_err, w_len, totals = _counts(refs, hyps, "word")
    c_err, c_len, _ = _counts(refs, hyps, "char")
    failed = np.array([bool(r.get("error")) for r in records], dtype=bool)
    everything = np.arange(len(records))
    result = {"source": source, "normalizer": normalizer, "by": by, "bootstrap": bootstrap, "seed": seed}
    result.update(_summary(everything, w_err, w_len, c_err, c_len, failed, bootstrap, seed))
    result.update(totals)
    groups: dict[str, list[int]] = {}
    if by is not None:
        for i, rec in enumerate(records):
            value = rec.get(by)
            groups.setdefault(NO_GROUP if value is None else str(value), []).append(i)
    result["per_group"] = {
        name: _summary(np.array(idx), w_err, w_len, c_err, c_len, failed, bootstrap, seed)
        for name, idx in sorted(groups.items())
    }
    if out_json is not None:
        with atomic_file(out_json) as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return result


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def format_table(summary: dict) -> str:
    """The summary of ``evaluate`` as a text table; WER, CER and the interval in **percent**."""
    rows = [(name, g) for name, g in summary.get("per_group", {}).items()] + [("all", summary)]
    head = f"{'group':<20} {'utts':>6} {'words':>7} {'WER %':>7} {'95% CI (WER %)':>16} {'CER %':>7} {'failed':>6}"
    lines = [head, "-" * len(head)]
    for name, g in rows:
        ci = g.get("wer_ci95")
        ci_s = "-" if ci is None else f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
        lines.append(
            f"{name[:20]:<20} {g['n_utterances']:>6} {g['n_ref_words']:>7} {_pct(g['wer']):>7} {ci_s:>16} "
            f"{_pct(g['cer']):>7} {g['n_failed_clips']:>6}"
        )
    lines.append(f"normalizer: {summary['normalizer']}; WER/CER in percent; {summary['bootstrap']} bootstrap resamples")
    return "\n".join(lines)
