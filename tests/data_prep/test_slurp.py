"""SLURP preparer on a tiny copy of the release layout."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.io.manifest import read_manifest
from data_prep import slurp
from data_prep._common import CorpusError
from tests.data_prep._audio import write_tone


def _line(slurp_id: int, sentence: str, scenario: str, files: list[str]) -> str:
    return json.dumps({"slurp_id": slurp_id, "sentence": sentence, "intent": f"{scenario}_query",
                       "scenario": scenario, "recordings": [{"file": f, "wer": 0.0} for f in files]})


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "slurp"
    data = root / "dataset" / "slurp"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(
        _line(1, "wake me up at seven", "alarm", ["audio-1-headset.flac", "audio-1.flac"]) + "\n"
        + _line(2, "what is the weather", "weather", ["audio-2-headset.flac", "audio-missing.flac"]) + "\n")
    (data / "devel.jsonl").write_text(_line(3, "play some jazz", "music", ["audio-3-headset.flac"]) + "\n")
    (data / "test.jsonl").write_text(_line(4, "order a pizza", "takeaway", ["audio-4.flac"]) + "\n")
    (data / "train_synthetic.jsonl").write_text(_line(5, "turn off the lights", "iot", ["audio-5.flac"]) + "\n")
    for name in ("audio-1-headset", "audio-1", "audio-2-headset", "audio-3-headset", "audio-4"):
        write_tone(root / "audio" / "slurp_real" / f"{name}.flac", 0.3, 16000)
    write_tone(root / "audio" / "slurp_synth" / "audio-5.flac", 0.2, 16000)
    return root


def test_release_to_manifest(release, tmp_path):
    out = tmp_path / "out"
    recs = read_manifest(slurp.prepare(release, out, echo=None))
    got = {r["id"]: (r["text"], r["domain"], r["split"], r["source"]) for r in recs}
    assert got == {
        "audio-1-headset": ("wake me up at seven", "alarm", "train", "real"),
        "audio-1": ("wake me up at seven", "alarm", "train", "real"),
        "audio-2-headset": ("what is the weather", "weather", "train", "real"),
        "audio-3-headset": ("play some jazz", "music", "dev", "real"),
        "audio-4": ("order a pizza", "takeaway", "test", "real"),
        "audio-5": ("turn off the lights", "iot", "train", "synthetic"),
    }
    assert {r["id"]: r["slurp_id"] for r in recs}["audio-5"] == 5
    assert recs[0]["audio_filepath"].endswith("audio/slurp_real/audio-1-headset.flac")
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["id"], s["reason"]) for s in skipped] == [("audio-missing", "missing_audio")]
    assert sorted(p.name for p in (out / "manifests").iterdir()) == [
        "alarm.train.jsonl", "iot.train.jsonl", "music.dev.jsonl", "takeaway.test.jsonl", "weather.train.jsonl"]


def test_headset_only_and_subsets(release, tmp_path):
    recs = read_manifest(slurp.prepare(release, tmp_path / "out", subsets=["train", "train_synthetic"],
                                       headset_only=True, echo=None))
    assert collections.Counter(r["source"] for r in recs) == {"real": 2, "synthetic": 1}
    assert sorted(r["id"] for r in recs) == ["audio-1-headset", "audio-2-headset", "audio-5"]


def test_scenarios_are_the_18_of_the_paper():
    assert len(slurp.SCENARIOS) == 18 and len(set(slurp.SCENARIOS)) == 18


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "dataset" / "slurp" / "devel.jsonl").unlink(), r"devel.jsonl does not exist"),
        (lambda r: (r / "audio" / "slurp_synth" / "audio-5.flac").unlink() or (r / "audio" / "slurp_synth").rmdir(),
         r"no slurp_synth/ folder under .*audio or .*slurp; download SLURP's audio"),
        (lambda r: (r / "dataset" / "slurp" / "test.jsonl").write_text('{"slurp_id": 4, "sentence": "x"}\n'),
         r"test.jsonl:1: missing field 'scenario'"),
    ],
)
def test_bad_release_raises_and_writes_nothing(release, tmp_path, damage, message):
    damage(release)
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match=message):
        slurp.prepare(release, out, echo=None)
    assert not out.exists()


def test_cli_slurp(release, tmp_path):
    res = CliRunner().invoke(main, ["prep", "slurp", str(release), str(tmp_path / "out"), "--subset", "test"])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in read_manifest(tmp_path / "out" / "manifest.jsonl")] == ["audio-4"]
    (tmp_path / "not_slurp").mkdir()
    res = CliRunner().invoke(main, ["prep", "slurp", str(tmp_path / "not_slurp"), str(tmp_path / "o2")])
    assert res.exit_code == 2 and "train.jsonl does not exist" in res.output
    assert not Path(tmp_path / "o2").exists()
