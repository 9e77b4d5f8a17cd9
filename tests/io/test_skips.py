"""The skip report: entries, counts, the one-line summary, the JSON and JSONL files, against hand values."""

import json

from asr_analogy.io.skips import SkipReport


def _report():
    r = SkipReport("corpus", n_total=13, n_kept=10, kept_seconds=41.2346)
    r.skip(7, "silent", "peak -70 dBFS")
    r.add(3, "a/ü.wav", "missing")
    r.skip("u9", "silent")
    return r


def test_entries_and_counts():
    r = _report()
    assert r.skipped == [
        {"id": "7", "reason": "silent", "detail": "peak -70 dBFS"},
        {"index": 3, "audio_filepath": "a/ü.wav", "reason": "missing", "detail": ""},
        {"id": "u9", "reason": "silent", "detail": ""},
    ]
    assert r.counts == {"silent": 2, "missing": 1} and len(r) == 3
    assert SkipReport().skipped == [] and SkipReport().skipped is not SkipReport().skipped


def test_summary_lines():
    assert _report().summary() == "kept 10 of 13 utterances (41.2 s); skipped 3: 1 missing, 2 silent"
    assert SkipReport().summary() == "skipped: none"
    only = SkipReport()
    only.skip(1, "empty_text")
    assert only.summary() == "skipped 1: 1 empty_text"
    assert SkipReport(n_total=2, n_kept=2, kept_seconds=3.0).summary() == "kept 2 of 2 utterances (3.0 s)"


def test_to_dict_and_files(tmp_path):
    r = _report()
    expected = {"source": "corpus", "n_total": 13, "n_kept": 10, "n_skipped": 3, "kept_seconds": 41.235,
                "counts": {"silent": 2, "missing": 1}, "skipped": r.skipped}
    assert r.to_dict() == expected
    path = r.write_json(tmp_path / "out" / "skips.json")
    assert path == tmp_path / "out" / "skips.json"
    assert path.read_text(encoding="utf-8") == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    assert "ü" in path.read_text(encoding="utf-8")  # not escaped
    path = r.write_jsonl(tmp_path / "out" / "skips.jsonl")
    assert path.read_text(encoding="utf-8").splitlines() == [json.dumps(e, ensure_ascii=False) for e in r.skipped]
    assert "ü" in path.read_text(encoding="utf-8")
    assert SkipReport().write_jsonl(tmp_path / "empty.jsonl").read_text() == ""
