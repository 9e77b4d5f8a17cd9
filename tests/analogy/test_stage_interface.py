"""The stage interface (fingerprints chain through the stages, the runner passes the context) and the cached-result
helper (a changed spec recomputes, an unchanged one is read back)."""

from __future__ import annotations

import hashlib
import json

from asr_analogy.analogy.cache import cached_result, read_json, short_hash
from asr_analogy.analogy.stages import STAGE_NAMES, STAGES, Stage, StageRunner


def test_cached_result_recomputes_only_when_the_spec_changes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"wer": 0.25 * len(calls)}

    path = tmp_path / "m" / "C.json"
    assert cached_result(path, {"lambda": 0.5}, compute) == {"wer": 0.25, "spec": {"lambda": 0.5}}
    assert read_json(path) == {"wer": 0.25, "spec": {"lambda": 0.5}}
    assert cached_result(path, {"lambda": 0.5}, compute) == {"wer": 0.25, "spec": {"lambda": 0.5}}
    assert len(calls) == 1  # unchanged spec: read back, not recomputed
    assert cached_result(path, {"lambda": 1.0}, compute) == {"wer": 0.5, "spec": {"lambda": 1.0}}
    assert len(calls) == 2
    # spec under another key (a job's fingerprint), and spec None: the file name itself is the key
    job = tmp_path / "job.json"
    assert cached_result(job, "abc", lambda: {"model_dir": "x"}, key="fingerprint") == {"model_dir": "x",
                                                                                        "fingerprint": "abc"}
    assert cached_result(job, "abc", compute, key="fingerprint")["model_dir"] == "x" and len(calls) == 2
    named = tmp_path / f"{short_hash({'grid': [0, 1]})}.json"
    assert cached_result(named, None, lambda: {"wer": [0.1]}) == {"wer": [0.1]}
    assert cached_result(named, None, compute) == {"wer": [0.1]} and len(calls) == 2


def test_short_hash_is_sorted_json_sha1():
    expected = hashlib.sha1(json.dumps({"a": 1, "b": [2]}, sort_keys=True).encode()).hexdigest()[:12]
    assert short_hash({"b": [2], "a": 1}) == expected


def test_stage_fingerprint_chains_the_previous_stage_and_the_input_sections():
    stage = Stage("s", lambda context: None, inputs=("x", "y"))
    section_hash = lambda *names: "+".join(names)  # noqa: E731
    expected = hashlib.sha1("prev|s|x+y".encode()).hexdigest()[:16]
    assert stage.fingerprint(section_hash, "prev") == expected
    assert Stage("t", lambda context: None).fingerprint(section_hash) == hashlib.sha1(b"|t|").hexdigest()[:16]


def test_a_stage_whose_inputs_change_reruns_with_those_after_it_and_the_others_are_skipped(tmp_path):
    runs = []
    config = {"a": 1, "b": 1}

    def stage(name, inputs):
        return Stage(name, lambda context: runs.append((name, context["tag"])) or {"n": len(runs)}, inputs=inputs)

    def runner(tag):
        stages = [stage("first", ("a",)), stage("second", ("b",)), stage("third", ())]
        return StageRunner(tmp_path / "exp", stages, lambda *names: short_hash({n: config[n] for n in names}),
                           context={"tag": tag})

    runner("one").run(echo=lambda m: None)
    assert runs == [("first", "one"), ("second", "one"), ("third", "one")]
    runner("two").run(echo=lambda m: None)
    assert runs[3:] == []  # nothing changed: every stage skipped
    config["b"] = 2
    r = runner("three")
    assert [a for _, a in r.plan()] == ["skip (complete)", "run", "run"]
    r.run(echo=lambda m: None)
    assert runs[3:] == [("second", "three"), ("third", "three")]
    assert read_json(r.marker_path("second"))["summary"] == {"n": 4}


def test_the_recipe_stage_list():
    assert STAGE_NAMES[0] == "prep" and STAGE_NAMES[-1] == "report" and len(set(STAGE_NAMES)) == len(STAGES)
    assert all(s.doc and s.outputs and callable(s.describe) for s in STAGES)
    from asr_analogy.cli.recipe import _STAGE_HELP

    assert _STAGE_HELP == ", ".join(STAGE_NAMES)  # the CLI's help lists the same stages
