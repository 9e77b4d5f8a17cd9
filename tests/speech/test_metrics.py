"""WER/CER with hand-computed expectations, normalizer tables, bootstrap determinism, CLI and error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ConfigError, ManifestError
from asr_analogy.speech.metrics import bootstrap_ci, evaluate, normalize_text

# (reference, hypothesis, word errors, reference words, char errors, reference chars), normalizer "none".
# Characters include the spaces between words.
UTTERANCES = [
    ("a b c d", "a x c", 2, 4, 3, 7),  # b->x substituted, d deleted; chars: b->x, " d" deleted
    ("hello world", "hello world", 0, 2, 0, 11),
    ("one two", "one two three", 1, 2, 6, 7),  # "three" inserted; chars: " three" inserted (6)
    ("cat", "bat", 1, 1, 1, 3),  # one substitution either way
    ("", "oops", 1, 0, 4, 0),  # empty reference: insertions count, the denominator does not grow
]


@pytest.mark.parametrize("ref,hyp,w_err,w_len,c_err,c_len", UTTERANCES)
def test_single_utterance_rates(ref, hyp, w_err, w_len, c_err, c_len):
    s = evaluate([{"text": ref, "hypothesis": hyp}], normalizer="none", by=None, bootstrap=0)
    assert (s["n_word_errors"], s["n_ref_words"], s["n_char_errors"], s["n_ref_chars"]) == (w_err, w_len, c_err, c_len)
    assert s["wer"] == (w_err / w_len if w_len else None)
    assert s["cer"] == (c_err / c_len if c_len else None)
    assert s["n_empty_references"] == (1 if w_len == 0 else 0)


def test_corpus_rate_is_total_errors_over_total_words():
    recs = [{"text": r, "hypothesis": h} for r, h, *_ in UTTERANCES]
    s = evaluate(recs, normalizer="none", by=None, bootstrap=0)
    # words: (2 + 0 + 1 + 1 + 1) / (4 + 2 + 2 + 1 + 0) = 5 / 9; the mean of per-utterance WERs would be 0.6875.
    assert s["wer"] == pytest.approx(5 / 9)
    # chars: (3 + 0 + 6 + 1 + 4) / (7 + 11 + 7 + 3 + 0) = 14 / 28
    assert s["cer"] == pytest.approx(0.5)
    assert (s["substitutions"], s["deletions"], s["insertions"]) == (2, 1, 2)
    assert s["n_utterances"] == 5 and s["n_empty_references"] == 1


def test_only_empty_references_give_no_rate():
    s = evaluate([{"text": "", "hypothesis": ""}, {"text": "  ", "hypothesis": "x"}], normalizer="none", by=None)
    assert s["wer"] is None and s["cer"] is None and s["wer_ci95"] is None
    assert s["n_empty_references"] == 2 and s["n_word_errors"] == 1


def test_per_group_table_and_missing_field():
    recs = [
        {"text": "a b c d", "hypothesis": "a x c", "domain": "voicemail"},
        {"text": "hello world", "hypothesis": "hello world", "domain": "ivr"},
        {"text": "one two", "hypothesis": "one", "domain": "ivr"},
        {"text": "cat", "hypothesis": "", "error": "unreadable"},
    ]
    s = evaluate(recs, normalizer="none", by="domain", bootstrap=0)
    g = s["per_group"]
    assert sorted(g) == ["(none)", "ivr", "voicemail"]
    assert g["voicemail"]["wer"] == pytest.approx(2 / 4)
    assert g["ivr"]["wer"] == pytest.approx(1 / 4)  # "two" deleted over 2 + 2 words
    assert g["(none)"]["wer"] == 1.0 and g["(none)"]["n_failed_clips"] == 1
    assert s["wer"] == pytest.approx((2 + 1 + 1) / (4 + 4 + 1)) and s["n_failed_clips"] == 1


# The same normalizer is used on both sides: differences in case and punctuation vanish, words do not.
NORMALIZED = [
    ("Hello, World!", "whisper_english", "hello world"),
    ("Don't stop, it's fine.", "whisper_english", "do not stop it is fine"),
    ("Mr. Smith paid $20", "whisper_english", "mister smith paid $20"),
    ("twenty-five [noise] (laughs) um", "whisper_english", "25"),
    ("Hello, World!", "basic", "hello world"),
    ("Don't stop", "basic", "don t stop"),
    ("Price: 3.5 [noise]", "basic", "price 3 5"),
    ("Don't 'quote' me", "lower_punct", "don't quote me"),
    ("It costs 3.50, or 1,000!", "lower_punct", "it costs 3.50 or 1.000"),
    ("snake_case\u2019s  TEXT", "lower_punct", "snake case's text"),
    ("  Keep As-Is. ", "none", "  Keep As-Is. "),
]


@pytest.mark.parametrize("text,normalizer,expected", NORMALIZED)
def test_normalizers(text, normalizer, expected):
    assert normalize_text(text, normalizer) == expected


def test_same_normalizer_on_references_and_hypotheses():
    recs = [{"text": "Your call is important to us, please stay on the line.",
             "hypothesis": "your call is important to us. Please stay on the line"}]
    assert evaluate(recs, normalizer="whisper_english", by=None, bootstrap=0)["wer"] == 0.0
    # Without normalization Your/your, us,/us., please/Please and line./line are four substitutions of 11 words.
    assert evaluate(recs, normalizer="none", by=None, bootstrap=0)["wer"] == pytest.approx(4 / 11)


def test_english_spelling_mapping_is_read(tmp_path):
    mapping = tmp_path / "normalizer.json"
    mapping.write_text(json.dumps({"colour": "color"}))
    assert normalize_text("Colour", "whisper_english") == "colour"
    assert normalize_text("Colour", "whisper_english", english_spelling=str(mapping)) == "color"


def test_unknown_normalizer():
    with pytest.raises(ConfigError, match="unknown normalizer 'fancy'"):
        normalize_text("x", "fancy")


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    errors = np.array([0, 2, 1, 0, 3, 1, 0, 0])
    lengths = np.array([4, 5, 3, 6, 4, 2, 5, 3])
    a = bootstrap_ci(errors, lengths, 500, seed=7)
    assert a == bootstrap_ci(errors, lengths, 500, seed=7)
    assert a != bootstrap_ci(errors, lengths, 500, seed=8)
    point = errors.sum() / lengths.sum()
    assert a[0] < point < a[1]
    assert 0.0 <= a[0] and a[1] <= 1.0


def test_bootstrap_of_identical_utterances_collapses():
    # Every resample has the same rate 1/4, so the interval is the point.
    assert bootstrap_ci(np.array([1, 1, 1]), np.array([4, 4, 4]), 200, seed=0) == (0.25, 0.25)
    # Two utterances with rates 0 and 1 and equal length: resamples give 0, 0.5 or 1, each end reached.
    assert bootstrap_ci(np.array([0, 2]), np.array([2, 2]), 1000, seed=0) == (0.0, 1.0)


def _write_hyps(path, recs):
    path.write_text("".join(json.dumps({"audio_filepath": f"c{i}.wav", **r}) + "\n" for i, r in enumerate(recs)))
    return path


def test_cli_prints_percent_and_writes_fractions(tmp_path):
    hyps = _write_hyps(tmp_path / "hyps.jsonl", [
        {"text": "a b c d", "hypothesis": "a x c", "domain": "voicemail"},
        {"text": "hello world", "hypothesis": "hello world", "domain": "ivr"},
    ])
    out = tmp_path / "summary.json"
    res = CliRunner().invoke(main, ["evaluate", str(hyps), "--normalizer", "none", "--out", str(out),
                                    "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    lines = {ln.split()[0]: ln.split() for ln in res.output.splitlines() if ln.strip()}
    assert lines["voicemail"][3] == "50.00" and lines["ivr"][3] == "0.00"
    assert lines["all"][3] == "33.33"  # 2 errors / 6 words, in percent
    summary = json.loads(out.read_text())
    assert summary["wer"] == pytest.approx(2 / 6) and summary["per_group"]["voicemail"]["wer"] == 0.5
    assert summary["bootstrap"] == 50 and len(summary["wer_ci95"]) == 2


def test_cli_missing_hypothesis_fails_and_writes_nothing(tmp_path):
    hyps = _write_hyps(tmp_path / "hyps.jsonl", [{"text": "a", "hypothesis": "a"}, {"text": "b"}])
    out = tmp_path / "summary.json"
    res = CliRunner().invoke(main, ["evaluate", str(hyps), "--out", str(out)])
    assert res.exit_code == 2
    assert "record #2" in res.output and "'hypothesis'" in res.output and str(hyps) in res.output
    assert not out.exists()
    with pytest.raises(ManifestError, match="does not exist"):
        evaluate(tmp_path / "nope.jsonl")
