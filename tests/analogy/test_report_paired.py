"""The recipe's table can be recomputed from the files beside it: every system's hypotheses
(``eval/<target>/hyps/<system>.jsonl``: ``id``, ``text``, ``hypothesis`` per scored utterance) give the WERs,
the paired differences versus C and base per target and pooled over targets, and the RESULTS.md rows."""

from __future__ import annotations

import json

import pytest

from asr_analogy.io.manifest import read_manifest
from asr_analogy.speech.metrics import evaluate, paired_bootstrap, paired_bootstrap_pooled


def _cell(p: dict) -> str:
    lo, hi = p["diff_ci_pp"]
    return f"{p['diff_pp']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _excludes_zero(p: dict) -> bool:
    return p["diff_ci_pp"][0] > 0 or p["diff_ci_pp"][1] < 0


def test_every_number_of_the_table_recomputes_from_the_hyps_files(e2e_run):
    _, exp, _ = e2e_run
    results = json.loads((exp / "results.json").read_text())
    n_boot, seed, norm = results["bootstrap"], results["seed"], results["normalizer"]
    md = (exp / "RESULTS.md").read_text()
    hyps = {}
    for target, entry in results["targets"].items():
        per_target = json.loads((exp / "eval" / target / "results.json").read_text())
        assert per_target["systems"] == entry["systems"]  # the report shows what lies beside the hyps
        files = {s["system"]: exp / "eval" / target / s["hyps"] for s in entry["systems"]}
        hyps[target] = files
        for s in entry["systems"]:
            recs = read_manifest(files[s["system"]], resolve_paths=False)
            assert len(recs) == s["n_utterances"] == 3
            assert all(isinstance(r[k], str) for r in recs for k in ("id", "text", "hypothesis"))
            again = evaluate(files[s["system"]], normalizer=norm, by=None, bootstrap=n_boot, seed=seed)
            assert (s["wer"], s["cer"], s["n_words"]) == (again["wer"], again["cer"], again["n_ref_words"])
            assert s["wer_ci95"] == pytest.approx(list(again["wer_ci95"]))
            row = next(ln for ln in md.splitlines() if ln.startswith(f"| {s['label']} |"))
            for ref in ("C", "base"):
                if s["system"] == ref:
                    assert f"vs_{ref}" not in s["paired"]
                    continue
                p = paired_bootstrap(files[ref], files[s["system"]], normalizer=norm, n_resamples=n_boot, seed=seed)
                assert s["paired"][f"vs_{ref}"] == {**p, "groups": [target]}
                assert p["diff_pp"] == pytest.approx(100 * (s["wer"] - next(
                    r["wer"] for r in entry["systems"] if r["system"] == ref)))
                assert f"| {_cell(p)} |" in row
    assert set(results["pooled"]) == {"base", "C", "syn2real", "ensemble", "best", "upper_bound", "syn2real_oracle"}
    verdicts = []
    for name, versus in results["pooled"].items():
        for vs, p in versus.items():
            ref = vs[len("vs_"):]
            pairs = {t: (files[ref], files[name]) for t, files in hyps.items()}
            assert p == paired_bootstrap_pooled(pairs, normalizer=norm, n_resamples=n_boot, seed=seed)
            verdicts.append(_excludes_zero(p))
    pooled_rows = md.split("## Paired differences pooled over targets")[1].split("\n## ")[0]
    rows = [ln for ln in pooled_rows.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) == len(verdicts) == 12  # 7 systems, each versus C and base but not itself
    assert sum(r.endswith("| significant |") for r in rows) == sum(verdicts)
    assert md.count("significant") == sum(verdicts) + 1  # once more in the sentence that explains the columns


def test_the_paired_difference_moves_with_the_hypotheses(e2e_run, tmp_path):
    """The columns are not constant: a system that fixes one word of C's is 100/words points better."""
    _, exp, _ = e2e_run
    c = read_manifest(exp / "eval" / "alpha" / "hyps" / "C.jsonl", resolve_paths=False)
    fixed = [{**r, "hypothesis": r["text"]} if i == 0 else r for i, r in enumerate(c)]
    p = paired_bootstrap(c, fixed, normalizer="whisper_english", n_resamples=50)
    words = json.loads((exp / "eval" / "alpha" / "results.json").read_text())["systems"][0]["n_words"]
    err0 = evaluate(c[:1], normalizer="whisper_english", by=None, bootstrap=0)["n_word_errors"]
    assert p["diff_pp"] == pytest.approx(-100 * err0 / words)


def _paired(diff: float) -> dict:
    return {"diff_pp": diff, "diff_ci_pp": [diff - 1.0, diff + 1.0]}


def test_plain_table_compares_each_row_with_its_own_reference():
    from asr_analogy.analogy.report import result_table

    rows = [("base", None), ("C", {"vs_base": _paired(-1.0), "vs_C_tts": _paired(-9.0)}),
            ("syn2real", {"vs_C": _paired(-2.0), "vs_base": _paired(-9.0)}),
            ("C_tts", {"vs_base": _paired(-3.0), "vs_C": _paired(-9.0)}),
            ("C_tts_syn2real_topk0.2", {"vs_C_tts": _paired(-4.0), "vs_C": _paired(-9.0)}),
            ("best", {"vs_C_tts": _paired(-5.0), "vs_C": _paired(-9.0)}),
            ("upper_bound", {"vs_C": _paired(-9.0)})]
    systems = [{"system": n, "label": n, "lambda": None, "wer": 0.1, "cer": 0.05, "paired": p or {}}
               for n, p in rows]
    results = {"targets": {"voicemail": {"systems": systems, "lambda": {"how": "pseudo-target"},
                                         "best": {"variant": "tts", "option": "topk:0.2", "scale": 0.4}}},
               "order": [n for n, _ in rows], "pooled": {}, "normalizer": "whisper_english"}
    table = {line.split()[1]: line for line in result_table(results).splitlines()[1:] if line.startswith("voicemail")}
    assert table["base"].rstrip().endswith("5.00") and "vs" not in table["base"]
    assert table["C"].endswith("-1.00 [-2.00, +0.00] vs base")
    assert table["syn2real"].endswith("-2.00 [-3.00, -1.00] vs C")
    assert table["C_tts"].endswith("-3.00 [-4.00, -2.00] vs base")
    assert table["C_tts_syn2real_topk0.2"].endswith("-4.00 [-5.00, -3.00] vs C_tts")
    assert table["best"].endswith("-5.00 [-6.00, -4.00] vs C_tts")  # the C it picked
    assert "vs" not in table["upper_bound"]
