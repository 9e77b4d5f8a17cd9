"""The leakage guard treats a record without a ``source`` field as real audio: an unlabelled target
record is refused to fine-tuning exactly as a labelled one is, and is logged as real."""

import pytest

from asr_analogy.analogy.access import DataAccess, LeakageError, audit_access_log, read_access_log
from asr_analogy.io.manifest import write_manifest


@pytest.fixture
def unlabelled(tmp_path):
    # target "vm" and source "gen" records; none says where its audio comes from
    recs = [{"audio_filepath": f"/a/{d}-{i}.wav", "text": "hi", "domain": d, "split": "train"}
            for d in ("vm", "gen") for i in range(2)]
    return write_manifest(recs, tmp_path / "unlabelled.jsonl", relative=False)


def test_target_record_without_source_is_refused_to_finetuning(tmp_path, unlabelled):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="finetune")
    with pytest.raises(LeakageError, match=r"asked for 2 real utterances of target domain\(s\) \['vm'\]"):
        acc.records(unlabelled, consumer="finetune/C", purpose="train", domains=["vm"])
    with pytest.raises(LeakageError):  # mixed with the other domain: still refused
        acc.records(unlabelled, consumer="select_lambda/pseudo_target[gen]", purpose="decode")
    # the non-target domain without a source is still handed out, and logged as real audio
    assert len(acc.records(unlabelled, consumer="finetune/C", purpose="train", domains=["gen"])) == 2
    log = read_access_log(tmp_path / "log.jsonl")
    assert [(e.get("refused", False), e["target_real_audio"], e["sources"]) for e in log] == [
        (True, True, ["real"]),
        (True, True, ["real"]),
        (False, False, ["real"]),
    ]
    assert audit_access_log(tmp_path / "log.jsonl") == []


def test_target_record_without_source_goes_to_evaluation(tmp_path, unlabelled):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="evaluate")
    assert len(acc.records(unlabelled, consumer="evaluate", purpose="decode", domains=["vm"])) == 2
    (entry,) = read_access_log(tmp_path / "log.jsonl")
    assert entry["target_real_audio"] is True and "refused" not in entry


def test_synthetic_target_record_is_not_guarded(tmp_path):
    recs = [{"audio_filepath": "/a/vm.wav", "text": "hi", "domain": "vm", "split": "train", "source": "synthetic"}]
    manifest = write_manifest(recs, tmp_path / "synthetic.jsonl", relative=False)
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="finetune")
    assert len(acc.records(manifest, consumer="finetune/C", purpose="train", domains=["vm"])) == 1
