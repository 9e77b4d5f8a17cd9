"""Recipe config validation, the stage runner (markers, skips, invalidation) and the leakage guard."""

from __future__ import annotations

import json

import pytest
import yaml

from asr_analogy.analogy.access import DataAccess, LeakageError, audit_access_log, read_access_log
from asr_analogy.analogy.config import load_recipe_config
from asr_analogy.analogy.stages import Stage, StageError, StageRunner
from asr_analogy.errors import ConfigError
from asr_analogy.io.manifest import write_manifest
from asr_analogy.io.yaml_file import parse_overrides


def _write(tmp_path, data, name="r.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


MIN = {"name": "x", "domains": {"targets": ["vm"]}}


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, {**MIN, "finetune": {"learning_rat": 1e-5}})
    with pytest.raises(ConfigError, match=r"r\.yaml: unknown key 'finetune\.learning_rat'"):
        load_recipe_config(p)


def test_bad_values_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="key 'synthesis.splits'.*leak"):
        load_recipe_config(_write(tmp_path, {**MIN, "synthesis": {"splits": ["train", "test"]}}))
    with pytest.raises(ConfigError, match="missing key 'domains'"):
        load_recipe_config(_write(tmp_path, {"name": "x"}))
    with pytest.raises(ConfigError, match="both targets and sources"):
        load_recipe_config(_write(tmp_path, {"name": "x", "domains": {"targets": ["a"], "sources": ["a", "b"]}}))
    with pytest.raises(ConfigError, match="pseudo_targets.*target domains"):
        load_recipe_config(_write(tmp_path, {**MIN, "lambda": {"pseudo_targets": ["vm"]}}))


def test_variants_and_overrides(tmp_path):
    p = _write(tmp_path, {**MIN, "finetune": {"max_steps": 50},
                          "variants": {"quick": {"finetune": {"max_steps": 5}}, "typo": {"finetune": {"stepz": 1}}}})
    base = load_recipe_config(p)
    assert base.finetune.max_steps == 50 and base.name == "x"
    q = load_recipe_config(p, "quick")
    assert q.finetune.max_steps == 5 and q.name == "x_quick" and q.variant == "quick"
    with pytest.raises(ConfigError, match=r"variant 'typo'.*unknown key 'finetune\.stepz'"):
        load_recipe_config(p, "typo")
    with pytest.raises(ConfigError, match="no variant 'nope'"):
        load_recipe_config(p, "nope")
    o = load_recipe_config(p, overrides=parse_overrides(["finetune.max_steps=7", "domains.targets=[a, b]"]))
    assert o.finetune.max_steps == 7 and o.domains.targets == ["a", "b"]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["finetune.max_steps"])


def _runner(tmp_path, calls, section="one"):
    def mk(name):
        return Stage(name, lambda context: calls.append(name) or {"n": len(calls)}, (section,))

    return StageRunner(tmp_path / "exp", [mk("a"), mk("b"), mk("c")], lambda *names: "|".join(names) + section)


def test_stage_runner_skips_complete_stages_and_reruns_from_a_stage(tmp_path):
    calls = []
    r = _runner(tmp_path, calls)
    r.run(echo=lambda m: None)
    assert calls == ["a", "b", "c"]
    assert json.loads(r.marker_path("b").read_text())["summary"] == {"n": 2}
    r.run(echo=lambda m: None)
    assert calls == ["a", "b", "c"]  # all complete
    r.run(from_stage="b", stop_stage="b", echo=lambda m: None)
    assert calls == ["a", "b", "c", "b"]
    assert not r.is_complete("c")  # stale after b reran
    r.run(echo=lambda m: None)
    assert calls[-1] == "c"


def test_changed_config_section_invalidates_the_stage(tmp_path):
    calls = []
    _runner(tmp_path, calls, "one").run(echo=lambda m: None)
    _runner(tmp_path, calls, "two").run(echo=lambda m: None)
    assert calls == ["a", "b", "c", "a", "b", "c"]


def test_stage_runner_errors(tmp_path):
    calls = []
    r = _runner(tmp_path, calls)
    with pytest.raises(StageError, match="earlier stage"):
        r.run(from_stage="b", echo=lambda m: None)
    assert calls == []
    with pytest.raises(ConfigError, match="'z' is not a stage"):
        r.run(from_stage="z", echo=lambda m: None)
    with pytest.raises(ConfigError, match="comes before"):
        r.plan(from_stage="c", stop_stage="a")


def test_a_failing_stage_leaves_no_marker(tmp_path):
    def boom(context):
        raise RuntimeError("x")

    r = StageRunner(tmp_path / "exp", [Stage("a", boom)], lambda *n: "")
    with pytest.raises(RuntimeError):
        r.run(echo=lambda m: None)
    assert not r.marker_path("a").exists()


@pytest.fixture
def manifests(tmp_path):
    recs = [{"audio_filepath": f"/a/{d}-{s}.wav", "text": "hi", "domain": d, "split": s, "source": "real"}
            for d in ("vm", "gen") for s in ("train", "dev", "test")]
    return write_manifest(recs, tmp_path / "real.jsonl", relative=False)


def test_guard_refuses_target_real_audio_outside_evaluation(tmp_path, manifests):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="finetune")
    assert len(acc.records(manifests, consumer="finetune/B", purpose="train", domains=["gen"], splits=["train"])) == 1
    with pytest.raises(LeakageError, match=r"finetune/B.*target domain\(s\) \['vm'\]"):
        acc.records(manifests, consumer="finetune/B", purpose="train", domains=["vm", "gen"], splits=["train"])
    with pytest.raises(LeakageError):
        acc.records(manifests, consumer="select_lambda/pseudo_target[gen]", purpose="decode", domains=["vm"])
    assert len(acc.records(manifests, consumer="evaluate", purpose="decode", domains=["vm"], splits=["test"])) == 1
    assert len(acc.records(manifests, consumer="select_lambda/oracle", purpose="decode", domains=["vm"])) == 3
    assert len(acc.records(manifests, consumer="finetune/upper_bound", purpose="train", domains=["vm"])) == 3
    log = read_access_log(tmp_path / "log.jsonl")
    assert [e.get("refused", False) for e in log] == [False, True, True, False, False, False]
    assert audit_access_log(tmp_path / "log.jsonl") == []


def test_guard_refuses_test_text_and_audit_catches_a_leak(tmp_path, manifests):
    acc = DataAccess(["vm"], tmp_path / "log.jsonl", stage="synthesize")
    texts = acc.texts(manifests, consumer="synthesize", splits=["train", "dev"])
    assert len(texts) == 4 and all("audio_filepath" not in r for r in texts)
    with pytest.raises(LeakageError, match="test-split text"):
        acc.texts(manifests, consumer="synthesize", splits=["test"])
    with open(tmp_path / "log.jsonl", "a") as fh:  # what a leaking stage would have logged
        fh.write(json.dumps({"stage": "finetune", "consumer": "finetune/C", "target_real_audio": True}) + "\n")
    assert [e["consumer"] for e in audit_access_log(tmp_path / "log.jsonl")] == ["finetune/C"]
