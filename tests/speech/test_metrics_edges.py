"""Metrics edges with hand values: the printed tables character by character, the documented defaults, error
messages that name the record, ids, groups, the spelling mapping passed through, bootstrap corner cases
(empty resamples, one resample, several chunks) and the paired bootstrap without words or with two groups."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from asr_analogy.errors import ConfigError, ManifestError
from asr_analogy.speech import metrics
from asr_analogy.speech.metrics import (
    bootstrap_ci,
    compare,
    evaluate,
    format_comparison,
    format_table,
    normalize_text,
    paired_bootstrap,
    paired_bootstrap_pooled,
    paired_difference,
)

# ----------------------------------------------------------------------------------------------- the defaults


@pytest.mark.parametrize("func,defaults", [
    (normalize_text, {"normalizer": "whisper_english", "english_spelling": None}),
    (evaluate, {"out_json": None, "normalizer": "whisper_english", "by": "domain", "bootstrap": 1000, "seed": 0,
                "english_spelling": None}),
    (bootstrap_ci, {"n_resamples": 1000, "seed": 0, "level": 0.95}),
    (paired_difference, {"n_resamples": 10000, "seed": 0, "level": 0.95, "indices": None}),
    (paired_bootstrap, {"normalizer": "whisper_english", "n_resamples": 10000, "seed": 0, "level": 0.95,
                        "english_spelling": None, "indices": None}),
    (paired_bootstrap_pooled, {"normalizer": "whisper_english", "n_resamples": 10000, "seed": 0, "level": 0.95,
                               "english_spelling": None}),
    (compare, {"out_json": None, "by": None, "normalizer": "whisper_english", "bootstrap": 10000, "seed": 0,
               "level": 0.95, "english_spelling": None}),
])
def test_documented_defaults(func, defaults):
    params = inspect.signature(func).parameters
    assert {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty} == defaults


def test_default_normalizer_is_whispers_english():
    assert normalize_text("Don't stop, Mr. Smith!") == "do not stop mister smith"


# ------------------------------------------------------------------------------------------ counts and records


def test_a_substitution_and_an_insertion_in_one_utterance_both_count():
    # words: a->x substituted, "c" inserted: 2 errors over 2 words; chars: a->x, " c" inserted: 3 over 3.
    s = evaluate([{"text": "a b", "hypothesis": "x b c"}], normalizer="none", by=None, bootstrap=0)
    assert (s["n_word_errors"], s["n_ref_words"], s["n_char_errors"], s["n_ref_chars"]) == (2, 2, 3, 3)
    assert (s["substitutions"], s["deletions"], s["insertions"]) == (1, 0, 1)


def test_result_names_its_settings():
    s = evaluate([{"text": "a", "hypothesis": "a"}], normalizer="none", by=None, bootstrap=0, seed=9)
    assert {k: s[k] for k in ("source", "normalizer", "by", "bootstrap", "seed")} == {
        "source": None, "normalizer": "none", "by": None, "bootstrap": 0, "seed": 9}
    assert s["per_group"] == {}


def test_a_transcript_file_needs_no_audio_path_to_be_scored(tmp_path):
    # Scoring reads text and hypothesis only: an audio_filepath that is not a path does not matter.
    hyps = tmp_path / "hyps.jsonl"
    hyps.write_text(json.dumps({"audio_filepath": None, "text": "a b", "hypothesis": "a"}) + "\n")
    s = evaluate(hyps, normalizer="none", by=None, bootstrap=0)
    assert s["source"] == str(hyps) and s["wer"] == 0.5


@pytest.mark.parametrize("records,kwargs,error,message", [
    ([], {}, ManifestError, "records: no record to score (the file is empty)"),
    ([{"text": "a", "hypothesis": "a"}], {"bootstrap": -1}, ConfigError, "bootstrap must be >= 0 resamples, got -1"),
    ([{"text": "a", "hypothesis": "a"}, {"hypothesis": "b"}], {}, ManifestError,
     "records: record #2 has no string field 'text' (the reference)"),
    ([{"id": "u1", "text": "a", "hypothesis": "a"}, {"id": "u2", "text": "b", "hypothesis": "b"},
      {"id": "u1", "text": "c", "hypothesis": "c"}], {}, ManifestError,
     "records: records #1 and #3 share the id 'u1'; each utterance must be scored once (duplicate id)"),
    ([{"text": "a", "hypothesis": "a"}], {"by": "speaker"}, ConfigError,
     "records: no record has the field 'speaker' to group on (--by)"),
])
def test_refusals_name_the_record(records, kwargs, error, message):
    with pytest.raises(error) as info:
        evaluate(records, normalizer="none", **{"by": None, **kwargs})
    assert str(info.value) == message


def test_distinct_ids_and_a_field_on_some_records_are_fine():
    recs = [{"id": "u1", "text": "a b", "hypothesis": "a", "speaker": "s1"},
            {"id": 7, "text": "c d", "hypothesis": "c d"},
            {"id": "u3", "text": "e f", "hypothesis": "e f", "speaker": "s1"}]
    s = evaluate(recs, normalizer="none", by="speaker", bootstrap=0)
    assert s["per_group"]["s1"]["wer"] == 0.25 and s["per_group"]["(none)"]["wer"] == 0.0
    everyone = [{**r, "speaker": "s2"} for r in recs]  # the field on every record
    assert list(evaluate(everyone, normalizer="none", by="speaker", bootstrap=0)["per_group"]) == ["s2"]
    # "domain", the default, may be missing everywhere: every record is "(none)"
    plain = [{"text": "a", "hypothesis": "b"}]
    assert list(evaluate(plain, normalizer="none", bootstrap=0)["per_group"]) == ["(none)"]


def test_english_spelling_reaches_every_scorer(tmp_path):
    mapping = tmp_path / "normalizer.json"
    mapping.write_text(json.dumps({"colour": "color"}))
    spell = str(mapping)
    recs = [{"id": "u1", "text": "the colour", "hypothesis": "the color"}]
    assert evaluate(recs, by=None, bootstrap=0)["wer"] == 0.5
    assert evaluate(recs, by=None, bootstrap=0, english_spelling=spell)["wer"] == 0.0
    same = [{"id": "u1", "text": "the colour", "hypothesis": "the colour"}]
    assert paired_bootstrap(same, recs, n_resamples=0)["wer_b_pct"] == 50.0
    assert paired_bootstrap(same, recs, n_resamples=0, english_spelling=spell)["wer_b_pct"] == 0.0
    assert paired_bootstrap_pooled({"g": (same, recs)}, n_resamples=0, english_spelling=spell)["wer_b_pct"] == 0.0
    assert compare(same, recs, bootstrap=0, english_spelling=spell)["all"]["wer_b_pct"] == 0.0


def test_json_summary_is_indented_by_two(tmp_path):
    out = tmp_path / "summary.json"
    s = evaluate([{"text": "a", "hypothesis": "b"}], out, normalizer="none", by=None, bootstrap=0)
    assert out.read_text() == json.dumps(s, indent=2) + "\n"
    out = tmp_path / "compare.json"
    r = compare([{"id": "u", "text": "a", "hypothesis": "a"}], [{"id": "u", "text": "a", "hypothesis": "b"}], out,
                normalizer="none", bootstrap=0)
    assert out.read_text() == json.dumps(r, indent=2) + "\n"


# ------------------------------------------------------------------------------------------------ the bootstrap

# Per utterance, normalizer "none" (chars count the spaces): words errors/length, chars errors/length.
SPREAD = [("a b c d", "a x c", "g"), ("e f", "e f", "g"), ("g h i", "g", "h"), ("j", "k", "h"), ("l m n o p", "l m", "g")]
W_ERR, W_LEN = np.array([2, 0, 2, 1, 3]), np.array([4, 2, 3, 1, 5])
C_ERR, C_LEN = np.array([3, 0, 4, 1, 6]), np.array([7, 3, 5, 1, 9])


def test_evaluate_intervals_use_the_seed_for_words_characters_and_groups():
    recs = [{"text": t, "hypothesis": h, "domain": d} for t, h, d in SPREAD]
    s = evaluate(recs, normalizer="none", bootstrap=300, seed=4)
    assert (s["n_word_errors"], s["n_ref_words"], s["n_char_errors"], s["n_ref_chars"]) == (8, 15, 14, 25)
    assert bootstrap_ci(W_ERR, W_LEN, 300, 4) != bootstrap_ci(W_ERR, W_LEN, 300, 5)  # the seed shows
    assert s["wer_ci95"] == bootstrap_ci(W_ERR, W_LEN, 300, 4)
    assert s["cer_ci95"] == bootstrap_ci(C_ERR, C_LEN, 300, 4)
    g = [0, 1, 4]
    assert s["per_group"]["g"]["wer_ci95"] == bootstrap_ci(W_ERR[g], W_LEN[g], 300, 4)
    assert s["per_group"]["g"]["cer_ci95"] == bootstrap_ci(C_ERR[g], C_LEN[g], 300, 4)


def test_bootstrap_of_one_utterance_one_word_one_resample():
    assert bootstrap_ci(np.array([1]), np.array([4]), 50) == (0.25, 0.25)  # a single utterance
    assert bootstrap_ci(np.array([1]), np.array([1]), 50) == (1.0, 1.0)  # one reference word in all
    assert bootstrap_ci(np.array([1, 3]), np.array([4, 4]), 1, seed=0) is not None  # a single resample
    assert bootstrap_ci(np.array([1, 3]), np.array([4, 4]), 0) is None
    assert bootstrap_ci(np.array([1, 3]), np.array([4, 4]), -5) is None


def test_bootstrap_leaves_out_resamples_of_empty_references():
    # Utterance 0: an empty reference with one insertion; utterance 1: one word, right. Draws of two:
    # (0, 0) no words: left out; (0, 1) and (1, 0): 1 error / 1 word = 1.0; (1, 1): 0 / 2 = 0.0.
    low, high = bootstrap_ci(np.array([1, 0]), np.array([0, 1]), 400, seed=0)
    assert (low, high) == (0.0, 1.0)


def test_bootstrap_in_several_chunks():
    # 1000 utterances: 2000 resamples a chunk, so 2001 resamples take two chunks, the second of one resample.
    errors, lengths = np.ones(1000, dtype=np.int64), np.full(1000, 4)
    assert bootstrap_ci(errors, lengths, 2001) == (0.25, 0.25)
    groups = [(np.zeros(1000, dtype=np.int64), errors, lengths)]
    p = paired_difference(groups, n_resamples=2001)
    assert p["diff_ci_pp"] == [25.0, 25.0] and p["n_resamples"] == 2001


# ------------------------------------------------------------------------------------------ the paired bootstrap


def test_paired_difference_of_no_group():
    assert paired_difference([]) == {
        "wer_a_pct": None, "wer_b_pct": None, "diff_pp": None, "rel_change_pct": None, "diff_ci_pp": None,
        "rel_ci_pct": None, "share_diff_le_0": None, "n_utterances": 0, "n_ref_words": 0, "n_errors_a": 0,
        "n_errors_b": 0, "n_resamples": 0, "seed": 0, "level": 0.95}
    assert paired_difference([], indices=[])["n_resamples"] == 0
    with pytest.raises(ValueError, match=r"^indices: 2 matrices for 1 group\(s\)$"):
        paired_difference([(np.array([0]), np.array([1]), np.array([1]))], indices=[np.zeros((2, 1))] * 2)


def test_paired_difference_without_reference_words_draws_nothing():
    p = paired_difference([(np.array([1, 0]), np.array([0, 2]), np.array([0, 0]))], n_resamples=50)
    assert p["n_resamples"] == 0 and p["diff_ci_pp"] is None and p["share_diff_le_0"] is None
    assert p["n_errors_a"] == 1 and p["n_errors_b"] == 2 and p["wer_a_pct"] is None


def test_paired_resamples_of_empty_references_are_left_out():
    # B makes one more error than A on each utterance; utterance 0 has no words, utterance 1 one word.
    # Draws: (0, 0) no words, left out; (0, 1), (1, 0): 2 more errors / 1 word = +200 points; (1, 1): 2 / 2 = +100.
    groups = [(np.array([0, 0]), np.array([1, 1]), np.array([0, 1]))]
    p = paired_difference(groups, indices=[np.array([[0, 0], [0, 1], [1, 0], [1, 1]])])
    # 3 values sorted 100, 200, 200: 2.5 % at position 0.05 -> 105; 97.5 % at 1.95 -> 200.
    assert p["diff_ci_pp"] == pytest.approx([105.0, 200.0])
    assert p["share_diff_le_0"] == 0.0 and p["rel_ci_pct"] is None  # A never errs: no relative change


def test_a_small_positive_difference_is_not_at_most_zero():
    # 1 more error than A over 200 words: B - A = +0.5 points in every resample.
    p = paired_difference([(np.array([0]), np.array([1]), np.array([200]))], n_resamples=20)
    assert p["diff_pp"] == 0.5 and p["share_diff_le_0"] == 0.0


def test_two_groups_pool_the_errors_of_a():
    # Each group one utterance, drawn every time: A 2 + 1 errors, B 3 + 1, 4 + 4 words.
    groups = [(np.array([2]), np.array([3]), np.array([4])), (np.array([1]), np.array([1]), np.array([4]))]
    p = paired_difference(groups, indices=[np.zeros((5, 1), dtype=int)] * 2)
    assert p["rel_change_pct"] == pytest.approx(100 / 3)  # (4 - 3) / 3
    assert p["rel_ci_pct"] == pytest.approx([100 / 3, 100 / 3]) and p["diff_ci_pp"] == pytest.approx([12.5, 12.5])


def test_an_empty_group_does_not_stop_the_next():
    groups = [(np.array([], dtype=int),) * 3, (np.array([0]), np.array([1]), np.array([2]))]
    p = paired_difference(groups, n_resamples=10)
    assert p["diff_ci_pp"] == [50.0, 50.0] and p["n_utterances"] == 1


def test_whole_float_errors_of_b_count_as_integers():
    # B's errors read from a table as floats: each is taken as the integer it holds.
    a, b, w = np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([2, 2, 2])
    exact = paired_difference([(a, b, w)], n_resamples=100, seed=1)
    assert paired_difference([(a, b.astype(np.float64), w)], n_resamples=100, seed=1) == exact


A = [{"id": "u1", "text": "a b", "hypothesis": "a b", "domain": "p"},
     {"id": "u2", "text": "c d", "hypothesis": "c x", "domain": "p"},
     {"id": "u3", "text": "e f", "hypothesis": "e f"}]
B = [{"id": "u1", "text": "a b", "hypothesis": "x b"},
     {"id": "u2", "text": "c d", "hypothesis": "c d"},
     {"id": "u3", "text": "e f", "hypothesis": "x y"}]


@pytest.mark.parametrize("a,b,message", [
    (A, B[:2] + [{"id": "", "text": "e f", "hypothesis": "x y"}], "system B records: record #3 has no string field "
     "'id' (needed to pair utterances)"),
    (A[:1] + [{"id": 2, "text": "c d", "hypothesis": "c x"}], B, "system A records: record #2 has no string field "
     "'id' (needed to pair utterances)"),
    (A + A[1:2], B, "system A records: id 'u2' appears twice (records #2 and #4)"),
    (A, B + [{"id": f"v{i}", "text": "z", "hypothesis": "z"} for i in range(4)],
     "system A records and system B records do not score the same utterances: 0 id(s) only in A [], 4 only in B "
     "['v0', 'v1', 'v2']; a paired comparison needs the same set"),
    (A + [{"id": f"v{i}", "text": "z", "hypothesis": "z"} for i in range(4)], B,
     "system A records and system B records do not score the same utterances: 4 id(s) only in A "
     "['v0', 'v1', 'v2'], 0 only in B []; a paired comparison needs the same set"),
])
def test_paired_refusals_name_the_system_and_the_records(a, b, message):
    with pytest.raises(ManifestError) as info:
        paired_bootstrap(a, b, normalizer="none")
    assert str(info.value) == message


def test_pooled_uses_seed_and_level():
    ya = [{"id": "w1", "text": "g h i j", "hypothesis": "g"}, {"id": "w2", "text": "k", "hypothesis": "k"}]
    yb = [{"id": "w1", "text": "g h i j", "hypothesis": "g h"}, {"id": "w2", "text": "k", "hypothesis": "x"}]
    arrays = [(np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([2, 2, 2])),
              (np.array([3, 0]), np.array([2, 1]), np.array([4, 1]))]
    pooled = paired_bootstrap_pooled({"x": (A, B), "y": (ya, yb)}, normalizer="none", n_resamples=200, seed=3,
                                     level=0.5)
    direct = paired_difference(arrays, 200, 3, 0.5)
    assert direct != paired_difference(arrays, 200, 4, 0.5)  # the seed shows
    assert pooled == {**direct, "groups": ["x", "y"]}


def test_compare_names_inputs_groups_and_level(tmp_path):
    r = compare(A, B, normalizer="none", bootstrap=0)
    assert (r["a"], r["b"], r["by"], r["per_group"]) == (None, None, None, {}) and "pooled" not in r
    pa, pb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, recs in ((pa, A), (pb, B)):
        path.write_text("".join(json.dumps({"audio_filepath": "x.wav", **rec}) + "\n" for rec in recs))
    r = compare(pa, pb, normalizer="none", by="domain", bootstrap=200, seed=1, level=0.5)
    assert (r["a"], r["b"]) == (str(pa), str(pb))
    assert list(r["per_group"]) == ["(none)", "p"]  # u3 has no domain
    err_a, err_b, words = np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([2, 2, 2])
    assert r["all"] == paired_difference([(err_a, err_b, words)], 200, 1, 0.5)
    assert r["per_group"]["p"] == paired_difference([(err_a[:2], err_b[:2], words[:2])], 200, 1, 0.5)
    assert r["pooled"] == {**paired_difference([(err_a[2:], err_b[2:], words[2:]), (err_a[:2], err_b[:2], words[:2])],
                                               200, 1, 0.5), "groups": ["(none)", "p"]}


# -------------------------------------------------------------------------------------------- the printed tables


def test_format_table_character_by_character():
    group = {"n_utterances": 2, "n_ref_words": 8, "wer": 0.125, "wer_ci95": (0.05, 0.2), "cer": 0.0625,
             "n_failed_clips": 1}
    empty = {"n_utterances": 1, "n_ref_words": 0, "wer": None, "wer_ci95": None, "cer": None, "n_failed_clips": 0}
    summary = {**group, "wer_ci95": (0.0, 0.3), "normalizer": "none", "bootstrap": 7,
               "per_group": {"a-group-name-of-24-chars": group, "empty": empty}}
    assert format_table(summary).splitlines() == [
        "group                  utts   words   WER %   95% CI (WER %)   CER % failed",
        "-" * 75,
        "a-group-name-of-24-c      2       8   12.50    [5.00, 20.00]    6.25      1",
        "empty                     1       0       -                -       -      0",
        "all                       2       8   12.50    [0.00, 30.00]    6.25      1",
        "normalizer: none; WER/CER in percent; 7 bootstrap resamples",
    ]
    # a summary without groups has the "all" row only
    assert format_table({k: v for k, v in summary.items() if k != "per_group"}).splitlines()[2].startswith("all ")


DIFF = {"wer_a_pct": 12.5, "wer_b_pct": 10.0, "diff_pp": -2.5, "diff_ci_pp": [-5.0, 1.25], "rel_change_pct": -20.0,
        "rel_ci_pct": [-40.0, 10.0], "share_diff_le_0": 0.875, "n_utterances": 3, "n_ref_words": 8,
        "n_resamples": 99, "seed": 4}
NO_DIFF = {**DIFF, "wer_a_pct": None, "wer_b_pct": None, "diff_pp": None, "diff_ci_pp": None, "rel_change_pct": None,
           "rel_ci_pct": None, "share_diff_le_0": None, "n_utterances": 1, "n_ref_words": 0}
HEAD = ("group                 A WER%  B WER%   B-A pp        95% CI (pp)    rel %     95% CI (rel %)  P(<=0)   utts"
        "   words")


def test_format_comparison_character_by_character():
    result = {"a": "runs/a.jsonl", "b": None, "normalizer": "none", "by": "domain", "all": DIFF,
              "per_group": {"a-group-name-of-24-chars": DIFF, "empty": NO_DIFF}, "pooled": DIFF}
    row = "  12.50   10.00    -2.50     [-5.00, +1.25]    -20.0     [-40.0, +10.0]   0.875      3       8"
    assert format_comparison(result).splitlines() == [
        "A: runs/a.jsonl",
        "B: records",
        HEAD,
        "-" * len(HEAD),
        "a-group-name-of-24-c " + row,
        "empty                      -       -        -                  -        -                  -       -      1"
        "       0",
        "all                  " + row,
        "pooled (by domain)   " + row,
        "normalizer: none; paired bootstrap over utterances, 99 resamples, seed 4; P(<=0): share of resamples "
        "where WER_B - WER_A <= 0",
    ]
    swapped = format_comparison({**result, "a": None, "b": "runs/b.jsonl", "per_group": {}})
    assert swapped.splitlines()[:2] == ["A: records", "B: runs/b.jsonl"]


def test_pct_of_none_is_a_dash():
    assert metrics._pct(None) == "-" and metrics._pct(0.1234) == "12.34"


def test_not_a_number_prints_in_lower_case():
    nan = float("nan")
    row = metrics.format_difference({**DIFF, "wer_a_pct": nan, "wer_b_pct": nan, "diff_pp": nan,
                                     "rel_change_pct": nan, "share_diff_le_0": nan})
    assert row.split()[:3] == ["nan", "nan", "+nan"] and row.split()[5] == "+nan" and row.split()[8] == "nan"


def test_defaults_in_use():
    # Calls without the optional arguments give the results of the documented defaults.
    errors, lengths = np.arange(40) % 7, 10 + np.arange(40) % 5  # 40 utterances, many distinct rates
    assert bootstrap_ci(errors, lengths) == bootstrap_ci(errors, lengths, 1000, 0, 0.95)
    assert bootstrap_ci(errors, lengths) != bootstrap_ci(errors, lengths, 1001, 0, 0.95)  # the count shows
    assert bootstrap_ci(errors, lengths) != bootstrap_ci(errors, lengths, 1000, 1, 0.95)  # the seed shows
    recs = [{"text": t, "hypothesis": h, "domain": d} for t, h, d in SPREAD]
    s = evaluate(recs, normalizer="none")
    assert (s["bootstrap"], s["seed"], s["by"]) == (1000, 0, "domain")
    assert s["wer_ci95"] == bootstrap_ci(W_ERR, W_LEN, 1000, 0)
    groups = [(np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([2, 2, 2]))]
    p = paired_difference(groups)
    assert (p["n_resamples"], p["seed"], p["level"]) == (10000, 0, 0.95)
    assert p == paired_difference(groups, 10000, 0, 0.95)
    assert paired_bootstrap(A, B, normalizer="none") == p
    assert paired_bootstrap_pooled({"g": (A, B)}, normalizer="none") == {**p, "groups": ["g"]}
    assert compare(A, B, normalizer="none")["all"] == p


def test_paired_refusal_of_a_record_without_text_names_the_system():
    with pytest.raises(ManifestError) as info:
        paired_bootstrap(A[:1] + [{"id": "u2", "hypothesis": "c x"}] + A[2:], B, normalizer="none")
    assert str(info.value) == "system A records: record #2 has no string field 'text' (the reference)"
