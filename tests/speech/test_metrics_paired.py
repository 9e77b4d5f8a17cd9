"""Paired bootstrap of the WER difference: a case where every resample is enumerated by hand, invariants
(identical systems, swapping A and B), pooling over groups, refusals, and the compare command."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ManifestError
from asr_analogy.speech.metrics import compare, paired_bootstrap, paired_bootstrap_pooled, paired_difference

# Three utterances of two words each. A: u1 right, u2 one substitution, u3 right.
# B: u1 one substitution, u2 right, u3 both words wrong. Errors A = [0, 1, 0], B = [1, 0, 2]:
# per-utterance B − A = [+1, −1, +2], WER_A = 1/6, WER_B = 3/6, B − A = +2/6 = +33.33 points, relative +200 %.
A = [{"audio_filepath": "u1.wav", "id": "u1", "text": "a b", "hypothesis": "a b"},
     {"audio_filepath": "u2.wav", "id": "u2", "text": "c d", "hypothesis": "c x"},
     {"audio_filepath": "u3.wav", "id": "u3", "text": "e f", "hypothesis": "e f"}]
B = [{"audio_filepath": "u3.wav", "id": "u3", "text": "e f", "hypothesis": "x y"},  # B in another order
     {"audio_filepath": "u1.wav", "id": "u1", "text": "a b", "hypothesis": "x b"},
     {"audio_filepath": "u2.wav", "id": "u2", "text": "c d", "hypothesis": "c d"}]
ALL_27 = np.array(list(itertools.product(range(3), repeat=3)))  # every resample of 3 utterances, each once


def test_every_resample_enumerated_by_hand():
    p = paired_bootstrap(A, B, normalizer="none", indices=ALL_27)
    assert p["wer_a_pct"] == pytest.approx(100 / 6) and p["wer_b_pct"] == pytest.approx(50.0)
    assert p["diff_pp"] == pytest.approx(100 * 2 / 6) and p["rel_change_pct"] == pytest.approx(200.0)
    # Every resample has 6 words, so B − A = (sum of 3 draws from {+1, −1, +2}) / 6.
    # The lowest two sums are −3 (u2 three times) and −1 (u2,u2,u1 in 3 orders; nothing sums to −2), the
    # highest two +6 (u3 three times) and +5 (u3,u3,u1 in 3 orders).
    # 2.5 % quantile at position 0.025·26 = 0.65: −3 + 0.65·(−1 − (−3)) = −1.7  → −1.7/6 = −28.33 points;
    # 97.5 % quantile at position 25.35: 5 + 0.35·(6 − 5) = 5.35              → 5.35/6 = +89.17 points.
    assert p["diff_ci_pp"] == pytest.approx([100 * -1.7 / 6, 100 * 5.35 / 6])
    # B − A ≤ 0 when the draws sum to ≤ 0: {u2,u2,u2} (1), {u2,u2,u1} (3 orders), {u2,u2,u3} sums 0 (3 orders);
    # any draw with u2 at most once sums to ≥ +1. So 7 of 27.
    assert p["share_diff_le_0"] == pytest.approx(7 / 27)
    # the relative change and its interval: next test
    assert (p["n_utterances"], p["n_ref_words"], p["n_errors_a"], p["n_errors_b"], p["n_resamples"]) == (3, 6, 1, 3, 27)


def test_hand_values_of_the_relative_interval():
    rel = sorted(100 * sum([1, -1, 2][i] for i in row) / sum([0, 1, 0][i] for i in row) for row in ALL_27 if 1 in row)
    # u2 once with two of {u1, u3}: (−1 + x + y) / 1 → u1u1: +100 (3), u1u3: +200 (6), u3u3: +300 (3);
    # u2 twice with u1 or u3: (−2 + 1)/2 = −50 (3), (−2 + 2)/2 = 0 (3); u2 three times: −3/3 = −100 (1).
    assert rel == [-100] + [-50] * 3 + [0] * 3 + [100] * 3 + [200] * 6 + [300] * 3
    p = paired_bootstrap(A, B, normalizer="none", indices=ALL_27)
    assert p["rel_ci_pct"] == pytest.approx([-100 + 0.45 * 50, 300.0])


def test_identical_systems_differ_by_zero_with_a_zero_interval():
    p = paired_bootstrap(A, A, normalizer="none", n_resamples=500, seed=3)
    assert p["diff_pp"] == 0 and p["diff_ci_pp"] == [0.0, 0.0] and p["rel_change_pct"] == 0
    assert p["share_diff_le_0"] == 1.0 and p["n_resamples"] == 500


def test_swapping_a_and_b_negates_the_difference_and_the_interval():
    ab = paired_bootstrap(A, B, normalizer="none", n_resamples=2000, seed=1)
    ba = paired_bootstrap(B, A, normalizer="none", n_resamples=2000, seed=1)
    assert ba["diff_pp"] == pytest.approx(-ab["diff_pp"])
    assert ba["diff_ci_pp"] == pytest.approx([-ab["diff_ci_pp"][1], -ab["diff_ci_pp"][0]])
    assert ab["diff_ci_pp"][0] < 0 < ab["diff_ci_pp"][1]  # a real interval, not a point
    assert (ba["wer_a_pct"], ba["wer_b_pct"]) == (ab["wer_b_pct"], ab["wer_a_pct"])


def test_seeded_and_deterministic():
    one = paired_bootstrap(A, B, normalizer="none", n_resamples=300, seed=5)
    assert one == paired_bootstrap(A, B, normalizer="none", n_resamples=300, seed=5)
    assert one["share_diff_le_0"] != paired_bootstrap(A, B, normalizer="none", n_resamples=300, seed=6)["share_diff_le_0"]


def test_pooled_resamples_within_each_group():
    # Group x: the case above; group y: one utterance of 4 words, A 0 errors, B 1 error (B − A always +1).
    ya = [{"audio_filepath": "v.wav", "id": "u1", "text": "g h i j", "hypothesis": "g h i j"}]
    yb = [{"audio_filepath": "v.wav", "id": "u1", "text": "g h i j", "hypothesis": "g h i"}]
    pooled = paired_bootstrap_pooled({"x": (A, B), "y": (ya, yb)}, normalizer="none", n_resamples=50)
    assert pooled["groups"] == ["x", "y"]  # the same id "u1" in two groups is fine
    assert pooled["diff_pp"] == pytest.approx(100 * (2 + 1) / 10) and pooled["rel_change_pct"] == pytest.approx(300.0)
    # Stratified: group y always contributes its single utterance, so every resample has 6 + 4 = 10 words.
    idx = [ALL_27, np.zeros((27, 1), dtype=int)]
    arrays = [(np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([2, 2, 2])), (np.array([0]), np.array([1]), np.array([4]))]
    p = paired_difference(arrays, indices=idx)
    # sums of x's draws shift by +1: 2.5 %: −3 + 1 + 0.65·2 = −0.7; 97.5 %: 6.35 → over 10 words
    assert p["diff_ci_pp"] == pytest.approx([100 * -0.7 / 10, 100 * 6.35 / 10])
    assert p["share_diff_le_0"] == pytest.approx(4 / 27)  # x's sums ≤ −1: {u2,u2,u2}, {u2,u2,u1} ×3


def test_mismatched_utterances_are_refused():
    with pytest.raises(ManifestError, match=r"do not score the same utterances: 1 id\(s\) only in A \['u3'\]"):
        paired_bootstrap(A, B[1:], normalizer="none")
    with pytest.raises(ManifestError, match="'u1' has different references"):
        paired_bootstrap(A, [{**B[0]}, {**B[1], "text": "a c"}, B[2]], normalizer="none")
    with pytest.raises(ManifestError, match="id 'u1' appears twice"):
        paired_bootstrap(A + A[:1], B, normalizer="none")
    with pytest.raises(ManifestError, match="record #2 has no string field 'id'"):
        paired_bootstrap(A, [B[0], {k: v for k, v in B[1].items() if k != "id"}, B[2]], normalizer="none")


def _write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_compare_cli_prints_the_difference_and_writes_json(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{**r, "domain": d} for r, d in zip(A, ["p", "p", "q"])])
    b = _write(tmp_path / "b.jsonl", [{**r, "domain": d} for r, d in zip(B, ["q", "p", "p"])])
    out = tmp_path / "cmp.json"
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--by", "domain", "--normalizer", "none",
                                    "--bootstrap", "200", "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln.split() for ln in res.output.splitlines() if ln.strip()}
    assert rows["all"][1:4] == ["16.67", "50.00", "+33.33"]
    assert rows["p"][1:4] == ["25.00", "25.00", "+0.00"]  # u1, u2: one error each side
    assert rows["q"][1:4] == ["0.00", "100.00", "+100.00"]  # u3
    assert rows["pooled"][3:6] == ["16.67", "50.00", "+33.33"]  # "pooled (by domain)": three words
    saved = json.loads(out.read_text())
    assert saved == compare(str(a), str(b), by="domain", normalizer="none", bootstrap=200, seed=2)
    assert saved["pooled"]["groups"] == ["p", "q"] and saved["all"]["n_resamples"] == 200


def test_compare_cli_refuses_mismatched_files_and_writes_nothing(tmp_path):
    a = _write(tmp_path / "a.jsonl", A)
    b = _write(tmp_path / "b.jsonl", B[:2])
    out = tmp_path / "cmp.json"
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 2 and "do not score the same utterances" in res.output and "'u2'" in res.output
    assert not out.exists()
