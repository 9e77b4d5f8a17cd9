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


def _load_scored(hyps_path_or_records) -> tuple[str | None, list[dict]]:
    """(source path or None, records) of a transcript JSONL file or of records given in memory."""
    if isinstance(hyps_path_or_records, (str, os.PathLike)):
        return str(hyps_path_or_records), read_manifest(hyps_path_or_records, resolve_paths=False)
    return None, list(hyps_path_or_records)


def _check_scored(records: list[dict], where: str) -> None:
    for i, rec in enumerate(records):
        if not isinstance(rec.get("hypothesis"), str):
            raise ManifestError(f"{where}: record #{i + 1} has no string field 'hypothesis' (run transcribe first)")
        if not isinstance(rec.get("text"), str):
            raise ManifestError(f"{where}: record #{i + 1} has no string field 'text' (the reference)")


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
    source, records = _load_scored(hyps_path_or_records)
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
    _check_scored(records, where)
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
    if by is not None and by != "domain" and not any(by in r for r in records):
        raise ConfigError(f"{where}: no record has the field {by!r} to group on (--by)")
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


# ---------------------------------------------------------------------------------------------------------------
# Paired comparison of two systems on the same utterances


def _word_errors_by_id(records: list[dict], where: str, normalizer: str, english_spelling: str | None):
    """{id: (normalized reference, record)}, per-utterance word errors and reference words, in record order."""
    _check_scored(records, where)
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        uid = rec.get("id")
        if not isinstance(uid, str) or not uid:
            raise ManifestError(f"{where}: record #{i + 1} has no string field 'id' (needed to pair utterances)")
        if uid in seen:
            raise ManifestError(f"{where}: id {uid!r} appears twice (records #{seen[uid] + 1} and #{i + 1})")
        seen[uid] = i
    norm = get_normalizer(normalizer, english_spelling)
    refs = [norm(r["text"]) for r in records]
    errors, words, _ = _counts(refs, [norm(r["hypothesis"]) for r in records], "word")
    return seen, refs, errors, words


def _paired_arrays(hyps_a, hyps_b, normalizer: str, english_spelling: str | None):
    """Records of A in A's order and, aligned with them, word errors of A and B and reference words."""
    src_a, recs_a = _load_scored(hyps_a)
    src_b, recs_b = _load_scored(hyps_b)
    where_a, where_b = src_a or "system A records", src_b or "system B records"
    ids_a, refs_a, err_a, words = _word_errors_by_id(recs_a, where_a, normalizer, english_spelling)
    ids_b, refs_b, err_b, _ = _word_errors_by_id(recs_b, where_b, normalizer, english_spelling)
    only_a, only_b = sorted(set(ids_a) - set(ids_b)), sorted(set(ids_b) - set(ids_a))
    if only_a or only_b:
        raise ManifestError(
            f"{where_a} and {where_b} do not score the same utterances: {len(only_a)} id(s) only in A "
            f"{only_a[:3]}, {len(only_b)} only in B {only_b[:3]}; a paired comparison needs the same set")
    order = np.array([ids_b[uid] for uid in ids_a], dtype=np.int64)
    for uid, i in ids_a.items():
        if refs_a[i] != refs_b[ids_b[uid]]:
            raise ManifestError(f"{where_a} and {where_b}: utterance {uid!r} has different references "
                                f"({refs_a[i]!r} vs {refs_b[ids_b[uid]]!r})")
    return recs_a, err_a, err_b[order], words


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    return [float(v) for v in np.quantile(values, [alpha, 1.0 - alpha])]


def paired_difference(
    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_resamples: int = 10000,
    seed: int = 0,
    level: float = 0.95,
    indices: list[np.ndarray] | None = None,
) -> dict:
    """Paired bootstrap of the corpus WER difference B − A on per-utterance counts, stratified by group.

    ``groups``: one ``(errors_a, errors_b, ref_words)`` triple of integer arrays, shape (n_g,), per group (one
    group = plain resampling). Each resample draws n_g utterances with replacement *within* every group (the
    same draw for A and B: paired) and pools errors and reference words over groups. ``indices``: the draws
    themselves, one (n_resamples, n_g) integer matrix per group, instead of ``default_rng(seed)``.

    Returns, with units in the key names: ``wer_a_pct``/``wer_b_pct`` (corpus WER, percent), ``diff_pp``
    (WER_B − WER_A, percentage points), ``rel_change_pct`` (100·(WER_B − WER_A)/WER_A, percent; None when A
    makes no error), ``diff_ci_pp``/``rel_ci_pct`` (the ``level`` interval: (1−level)/2 and 1−(1−level)/2
    quantiles of the resampled values, linear interpolation; resamples with no reference words, or no error
    of A for the relative change, are left out), ``share_diff_le_0`` (fraction of resamples where B − A ≤ 0),
    counts ``n_utterances``, ``n_ref_words``, ``n_errors_a``, ``n_errors_b``, and ``n_resamples``, ``seed``,
    ``level``. Intervals are None without resamples. Deterministic for a given ``seed``.
    """
    sums = [(int(a.sum()), int(b.sum()), int(w.sum())) for a, b, w in groups]
    ea, eb, words = (sum(x) for x in zip(*sums)) if sums else (0, 0, 0)
    if indices is not None:
        if len(indices) != len(groups):
            raise ValueError(f"indices: {len(indices)} matrices for {len(groups)} group(s)")
        n_resamples = len(indices[0]) if indices else 0
    n_resamples = n_resamples if words else 0
    d_num = np.zeros(n_resamples, dtype=np.int64)  # resampled Σ(errors_b − errors_a)
    a_num = np.zeros(n_resamples, dtype=np.int64)  # resampled Σ errors_a
    den = np.zeros(n_resamples, dtype=np.int64)  # resampled Σ reference words
    rng = np.random.default_rng(seed)
    for g, (a, b, w) in enumerate(groups):
        n = len(w)
        if n == 0:
            continue
        d = np.asarray(b, dtype=np.int64) - np.asarray(a, dtype=np.int64)
        step = max(1, 2_000_000 // n)  # resamples per chunk, bounding memory to ~16 MB of indices
        for start in range(0, n_resamples, step):
            k = min(step, n_resamples - start)
            idx = indices[g][start : start + k] if indices is not None else rng.integers(0, n, size=(k, n))
            d_num[start : start + k] += d[idx].sum(axis=1)
            a_num[start : start + k] += np.asarray(a)[idx].sum(axis=1)
            den[start : start + k] += np.asarray(w)[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(den > 0, 100.0 * d_num / np.maximum(den, 1), np.nan)
        rel = np.where(a_num > 0, 100.0 * d_num / np.maximum(a_num, 1), np.nan)
    valid = np.isfinite(diff)
    return {
        "wer_a_pct": 100.0 * ea / words if words else None,
        "wer_b_pct": 100.0 * eb / words if words else None,
        "diff_pp": 100.0 * (eb - ea) / words if words else None,
        "rel_change_pct": 100.0 * (eb - ea) / ea if ea else None,
        "diff_ci_pp": _interval(diff, level),
        "rel_ci_pct": _interval(rel, level),
        "share_diff_le_0": float((diff[valid] <= 0).mean()) if valid.any() else None,
        "n_utterances": int(sum(len(w) for _, _, w in groups)),
        "n_ref_words": int(words), "n_errors_a": int(ea), "n_errors_b": int(eb),
        "n_resamples": int(n_resamples), "seed": seed, "level": level,
    }


def paired_bootstrap(hyps_a, hyps_b, *, normalizer: str = "whisper_english", n_resamples: int = 10000,
                     seed: int = 0, level: float = 0.95, english_spelling: str | None = None,
                     indices: np.ndarray | None = None) -> dict:
    """Paired bootstrap over utterances of the WER difference B − A of two systems scored on the same utterances.

    ``hyps_a``, ``hyps_b``: transcript JSONL files or records with ``id``, ``text`` and ``hypothesis``; they are
    matched by ``id`` and must hold the same ids with the same normalized references (else ``ManifestError``).
    ``indices``: an optional (n_resamples, n_utterances) matrix of draws, rows indexing A's records in order.
    Returns ``paired_difference``'s dict: WERs in percent, the difference in percentage points, the relative
    change in percent, their ``level`` intervals and the share of resamples where B − A ≤ 0.
    """
    _, err_a, err_b, words = _paired_arrays(hyps_a, hyps_b, normalizer, english_spelling)
    return paired_difference([(err_a, err_b, words)], n_resamples, seed, level,
                             None if indices is None else [np.asarray(indices)])


def paired_bootstrap_pooled(pairs: dict, *, normalizer: str = "whisper_english", n_resamples: int = 10000,
                            seed: int = 0, level: float = 0.95, english_spelling: str | None = None) -> dict:
    """The paired bootstrap pooled over groups (e.g. targets): ``pairs`` is {group: (hyps_a, hyps_b)}.

    Utterances are resampled within each group (stratified) and errors and reference words pooled over groups;
    ids need only be unique within a group. Returns ``paired_difference``'s dict plus ``groups`` (their names).
    """
    arrays = [_paired_arrays(a, b, normalizer, english_spelling)[1:] for a, b in pairs.values()]
    return {**paired_difference(arrays, n_resamples, seed, level), "groups": list(pairs)}


def compare(hyps_a, hyps_b, out_json: str | os.PathLike | None = None, *, by: str | None = None,
            normalizer: str = "whisper_english", bootstrap: int = 10000, seed: int = 0, level: float = 0.95,
            english_spelling: str | None = None) -> dict:
    """Compare two systems' transcripts of the same utterances with the paired bootstrap.

    Returns (and writes to ``out_json`` atomically, when given) ``{"a", "b", "normalizer", "by", "all",
    "per_group", "pooled"}``: ``all`` is ``paired_bootstrap`` over every utterance; ``per_group`` the same for
    the utterances of each value of A's field ``by``; ``pooled`` (only with ``by``) resamples within each group
    and pools them. Units as in ``paired_difference`` (percent and percentage points).
    """
    recs_a, err_a, err_b, words = _paired_arrays(hyps_a, hyps_b, normalizer, english_spelling)
    names = {"a": str(hyps_a) if isinstance(hyps_a, (str, os.PathLike)) else None,
             "b": str(hyps_b) if isinstance(hyps_b, (str, os.PathLike)) else None}
    result = {**names, "normalizer": normalizer, "by": by,
              "all": paired_difference([(err_a, err_b, words)], bootstrap, seed, level), "per_group": {}}
    if by is not None:
        members: dict[str, list[int]] = {}
        for i, rec in enumerate(recs_a):
            members.setdefault(NO_GROUP if rec.get(by) is None else str(rec.get(by)), []).append(i)
        groups = {g: (err_a[idx], err_b[idx], words[idx]) for g, idx in sorted(members.items())}
        result["per_group"] = {g: paired_difference([arr], bootstrap, seed, level) for g, arr in groups.items()}
        result["pooled"] = {**paired_difference(list(groups.values()), bootstrap, seed, level), "groups": list(groups)}
    if out_json is not None:
        with atomic_file(out_json) as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return result


def format_difference(p: dict) -> str:
    """One line of a ``paired_difference`` dict: WER A → B (percent), B − A in points and relative, interval."""
    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    ci, rel_ci = p["diff_ci_pp"], p["rel_ci_pct"]
    return (f"{num(p['wer_a_pct'], '.2f'):>7} {num(p['wer_b_pct'], '.2f'):>7} {num(p['diff_pp'], '+.2f'):>8} "
            f"{'-' if ci is None else f'[{ci[0]:+.2f}, {ci[1]:+.2f}]':>18} {num(p['rel_change_pct'], '+.1f'):>8} "
            f"{'-' if rel_ci is None else f'[{rel_ci[0]:+.1f}, {rel_ci[1]:+.1f}]':>18} "
            f"{num(p['share_diff_le_0'], '.3f'):>7} {p['n_utterances']:>6} {p['n_ref_words']:>7}")


def format_comparison(result: dict) -> str:
    """The result of ``compare`` as a text table (WER in percent, differences in percentage points)."""
    head = (f"{'group':<20} {'A WER%':>7} {'B WER%':>7} {'B-A pp':>8} {'95% CI (pp)':>18} {'rel %':>8} "
            f"{'95% CI (rel %)':>18} {'P(<=0)':>7} {'utts':>6} {'words':>7}")
    lines = [f"A: {result['a'] or 'records'}", f"B: {result['b'] or 'records'}", head, "-" * len(head)]
    lines += [f"{g[:20]:<20} {format_difference(p)}" for g, p in result["per_group"].items()]
    lines.append(f"{'all':<20} {format_difference(result['all'])}")
    if "pooled" in result:
        lines.append(f"{'pooled (by ' + str(result['by']) + ')':<20} {format_difference(result['pooled'])}")
    a = result["all"]
    lines.append(f"normalizer: {result['normalizer']}; paired bootstrap over utterances, {a['n_resamples']} resamples, "
                 f"seed {a['seed']}; P(<=0): share of resamples where WER_B - WER_A <= 0")
    return "\n".join(lines)
