"""The paired bootstrap over seeds: each utterance's errors summed over seeds, against hand counts."""

from __future__ import annotations

import json

from asr_analogy.analogy.seeds import paired_over_seeds


def _write(path, hyps):
    path.parent.mkdir(parents=True, exist_ok=True)
    refs = ["a b c d", "e f"]
    path.write_text("".join(json.dumps({"id": f"u{i}", "audio_filepath": f"u{i}.wav", "text": r, "hypothesis": h}) + "\n"
                            for i, (r, h) in enumerate(zip(refs, hyps))))
    return path


def test_errors_are_summed_over_seeds_per_utterance(tmp_path):
    files = {"t": {
        0: {"ref": _write(tmp_path / "0/ref.jsonl", ["a b c x", "e f"]),     # 1 error
            "sys": _write(tmp_path / "0/sys.jsonl", ["a b c d", "e f"])},    # 0 errors
        1: {"ref": _write(tmp_path / "1/ref.jsonl", ["a x c x", "e x"]),     # 3 errors
            "sys": _write(tmp_path / "1/sys.jsonl", ["a b c d", "e x"])},    # 1 error
    }}
    p = paired_over_seeds(files, "ref", "sys", normalizer="none", bootstrap=200, seed=0)
    # 12 reference words over two seeds: reference 4 errors (33.33 %), system 1 (8.33 %)
    assert p["wer_a_pct"] == 100 * 4 / 12 and p["wer_b_pct"] == 100 * 1 / 12
    assert p["diff_pp"] == 100 * (1 - 4) / 12
    assert p["n_utterances"] == 2 and p["groups"] == ["t"]
    assert p["share_diff_le_0"] == 1.0  # the system is never worse on either utterance
    assert paired_over_seeds(files, "ref", "missing", normalizer="none", bootstrap=10, seed=0) is None


def test_goal_compares_the_pick_with_c_tts_and_the_stronger_of_c_paper_and_c_multi():
    from asr_analogy.analogy.seeds import goal_summary

    def p(ref_wer, diff, ci):
        return {"wer_a_pct": ref_wer, "diff_pp": diff, "diff_ci_pp": ci, "rel_change_pct": 100 * diff / ref_wer,
                "rel_ci_pct": [100 * c / ref_wer for c in ci]}

    pooled = {"best": {"vs_C_tts": p(20.0, -5.0, [-7.0, -3.0]), "vs_C": p(12.0, -1.0, [-2.0, 0.5]),
                       "vs_C_multi": p(10.0, 1.0, [-1.0, 3.0]), "vs_base": p(25.0, -10.0, [-12.0, -8.0])}}
    goal = goal_summary(pooled)
    assert goal["vs_C_tts"]["rel_change_pct"] == -25.0 and goal["vs_C_tts"]["significant"]
    # C_multi (10 %) is stronger than C_paper, named C here (12 %)
    assert goal["vs_strongest"]["reference"] == "C_multi" and goal["vs_strongest"]["rel_change_pct"] == 10.0
    assert not goal["vs_strongest"]["significant"]
    assert goal_summary({"best": {"vs_C": pooled["best"]["vs_C"]}}) is None
