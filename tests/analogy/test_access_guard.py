"""The leakage guard in detail: which consumer names count as allowed, the filters, the access log entry field by
field, the refusal message word for word, text hand-outs, the manifest cache and reading a damaged log."""

from __future__ import annotations

import json

import pytest

from asr_analogy.analogy.access import (
    TARGET_REAL_ALLOWED,
    DataAccess,
    LeakageError,
    audit_access_log,
    read_access_log,
)
from asr_analogy.io.manifest import write_manifest


@pytest.fixture
def manifest(tmp_path):
    # vm (the target) and gen: real train/test, a synthetic vm train record with a voice, one gen dev record
    recs = [
        {"audio_filepath": "/a/vm-train.wav", "text": "one", "domain": "vm", "split": "train", "source": "real",
         "duration": 1.0},
        {"audio_filepath": "/a/vm-test.wav", "text": "two", "domain": "vm", "split": "test", "source": "real"},
        {"audio_filepath": "/a/vm-syn.wav", "text": "three", "domain": "vm", "split": "train",
         "source": "synthetic", "voice": "v1"},
        {"audio_filepath": "/a/gen-train.wav", "text": "four", "domain": "gen", "split": "train", "source": "real",
         "voice": "v2"},
        {"audio_filepath": "/a/gen-dev.wav", "text": "five", "domain": "gen", "split": "dev", "source": "real"},
    ]
    return write_manifest(recs, tmp_path / "all.jsonl", relative=False)


@pytest.mark.parametrize("consumer,allowed", [
    ("evaluate", True), ("evaluate/vm", True), ("evaluate[vm]", True), ("evaluated", False),
    ("select_lambda/oracle", True), ("select_lambda/oracle[vm]", True), ("select_lambda", False),
    ("finetune/upper_bound", True), ("finetune/upper_bound/x", True), ("finetune/upper_boundary", False),
    ("finetune/C", False), ("", False),
])
def test_which_consumers_may_read_target_real_audio(tmp_path, manifest, consumer, allowed):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl")
    if allowed:
        assert [r["text"] for r in acc.records(manifest, consumer=consumer, purpose="decode", splits=["test"])] == ["two"]
    else:
        with pytest.raises(LeakageError):
            acc.records(manifest, consumer=consumer, purpose="decode", splits=["test"])


def test_filters_by_domain_split_and_voice(tmp_path, manifest):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl")

    def texts(**kw):
        return [r["text"] for r in acc.records(manifest, consumer="finetune/C", purpose="train", **kw)]

    assert texts(domains=["gen"]) == ["four", "five"]
    assert texts(domains=["gen"], splits=["dev"]) == ["five"]
    assert texts(voices=["v1", "v2"]) == ["three", "four"]
    assert texts(domains=["vm"], voices=["v1"]) == ["three"]  # the synthetic target record is not guarded
    assert texts(domains=[]) == [] and texts(splits=["nope"]) == []


def test_records_are_copies(tmp_path, manifest):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl")
    first = acc.records(manifest, consumer="evaluate", purpose="decode")
    first[0]["text"] = "changed"
    assert acc.records(manifest, consumer="evaluate", purpose="decode")[0]["text"] == "one"


def test_the_log_entry_field_by_field(tmp_path, manifest, monkeypatch):
    monkeypatch.setattr("time.time", lambda: 1700000000.123456)
    acc = DataAccess(["vm"], tmp_path / "logs" / "run" / "log.jsonl", stage="ft")  # the log's folders are made
    acc.records(manifest, consumer="finetune/C", purpose="train", domains=["gen", "vm"], voices=["v1", "v2"])
    acc.records(manifest, consumer="evaluate", purpose="decode", domains=["vm"], splits=["test"])
    acc.records(manifest, consumer="evaluate", purpose="decode", domains=["gen"], log=False)  # not logged
    lines = (tmp_path / "logs" / "run" / "log.jsonl").read_text().splitlines()
    assert lines[0] == json.dumps({
        "consumer": "finetune/C", "domains": ["gen", "vm"], "file": str(manifest), "n": 2, "purpose": "train",
        "sources": ["real", "synthetic"], "splits": ["train"], "stage": "ft", "target_real_audio": False,
        "time": 1700000000.123}, sort_keys=True)
    assert json.loads(lines[1]) == {
        "consumer": "evaluate", "domains": ["vm"], "file": str(manifest), "n": 1, "purpose": "decode",
        "sources": ["real"], "splits": ["test"], "stage": "ft", "target_real_audio": True, "time": 1700000000.123}
    assert len(lines) == 2


def test_the_refusal_names_stage_consumer_count_and_domains_and_is_logged(tmp_path, manifest):
    acc = DataAccess(["vm", "gen"], tmp_path / "log.jsonl", stage="finetune")
    with pytest.raises(LeakageError) as info:
        acc.records(manifest, consumer="finetune/B", purpose="train", splits=["train", "dev"], log=False)
    assert str(info.value) == (
        "stage 'finetune' (finetune/B) asked for 3 real utterances of target domain(s) ['gen', 'vm']; target real "
        "audio is read only by evaluate, select_lambda/oracle, finetune/upper_bound")
    (entry,) = read_access_log(tmp_path / "log.jsonl")  # refused requests are logged even with log=False
    assert entry["refused"] is True and entry["n"] == 4 and entry["target_real_audio"] is True
    assert entry["sources"] == ["real", "synthetic"] and entry["splits"] == ["dev", "train"]
    assert audit_access_log(tmp_path / "log.jsonl") == []


def test_records_without_domain_split_or_source_are_logged_as_none_and_real(tmp_path):
    m = write_manifest([{"audio_filepath": "/a/x.wav", "text": "x"}], tmp_path / "bare.jsonl", relative=False)
    acc = DataAccess([], tmp_path / "log.jsonl")
    assert len(acc.records(m, consumer="finetune/C", purpose="train")) == 1
    (entry,) = read_access_log(tmp_path / "log.jsonl")
    assert (entry["domains"], entry["splits"], entry["sources"], entry["stage"]) == (["None"], ["None"], ["real"], "-")


def test_texts_strip_the_audio_and_log_a_text_entry(tmp_path, manifest):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="synth")
    out = acc.texts(manifest, consumer="synthesize", splits=("train",))
    assert out == [
        {"text": "one", "domain": "vm", "split": "train", "source": "real"},
        {"text": "three", "domain": "vm", "split": "train", "source": "synthetic", "voice": "v1"},
        {"text": "four", "domain": "gen", "split": "train", "source": "real", "voice": "v2"},
    ]
    entry = read_access_log(tmp_path / "log.jsonl")[0]
    del entry["time"]
    assert entry == {"stage": "synth", "consumer": "synthesize", "purpose": "text", "file": str(manifest), "n": 3,
                     "domains": ["gen", "vm"], "splits": ["train"], "sources": ["real", "synthetic"],
                     "target_real_audio": False}
    # evaluation may read test text (its sub-consumers too); nothing else may
    assert [r["text"] for r in acc.texts(manifest, consumer="evaluate/vm", splits=["test"])] == ["two"]
    with pytest.raises(LeakageError) as info:
        acc.texts(manifest, consumer="select_lambda/oracle", splits=["dev", "test"])
    assert str(info.value) == "select_lambda/oracle asked for test-split text; only evaluation may read it"


def test_a_stage_view_shares_guard_log_and_cache(tmp_path, manifest):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="one")
    acc.records(manifest, consumer="evaluate", purpose="decode")
    manifest.write_text("")  # read once: later reads come from the cache, in this object and its stage views
    other = acc.for_stage("two")
    assert (other.protected, other.log_path, other.stage) == (frozenset({"vm"}), tmp_path / "log.jsonl", "two")
    assert len(other.records(manifest, consumer="evaluate", purpose="decode")) == 5
    with pytest.raises(LeakageError):
        other.records(manifest, consumer="finetune/C", purpose="train")
    assert [e["stage"] for e in read_access_log(tmp_path / "log.jsonl")] == ["one", "two", "two"]


def test_reading_a_log_skips_blank_and_cut_lines(tmp_path):
    assert read_access_log(tmp_path / "missing.jsonl") == []
    log = tmp_path / "log.jsonl"
    log.write_text('{"consumer": "a"}\n\n   \n{"consumer": "b", "tar\n{"consumer": "c"}\n')
    assert read_access_log(log) == [{"consumer": "a"}, {"consumer": "c"}]


def test_audit_lists_only_unrefused_hand_outs_outside_the_allowed(tmp_path):
    log = tmp_path / "log.jsonl"
    entries = [
        {"consumer": "finetune/C", "target_real_audio": True},  # a leak
        {"consumer": "finetune/C", "target_real_audio": True, "refused": True},  # refused: no hand-out
        {"consumer": "finetune/C", "target_real_audio": False},
        {"consumer": "evaluate", "target_real_audio": True},
        {"target_real_audio": True},  # no consumer named: a leak
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert audit_access_log(log) == [entries[0], entries[4]]
    assert TARGET_REAL_ALLOWED == ("evaluate", "select_lambda/oracle", "finetune/upper_bound")


def test_each_manifest_is_cached_apart(tmp_path, manifest):
    other = write_manifest([{"audio_filepath": "/a/x.wav", "text": "six", "domain": "gen", "split": "dev"}],
                           tmp_path / "other.jsonl", relative=False)
    acc = DataAccess(["vm"], tmp_path / "log.jsonl")
    assert len(acc.records(manifest, consumer="evaluate", purpose="decode")) == 5
    assert [r["text"] for r in acc.records(other, consumer="evaluate", purpose="decode")] == ["six"]
