"""NeMo / Lhotse JSONL importer: whole files, segments, cuts with supervisions, recordings + supervisions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.io.manifest import read_manifest
from data_prep import nemo_jsonl
from data_prep._common import CorpusError
from tests.data_prep._audio import write_tone


def _jsonl(path: Path, rows: list[dict], gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def audio(tmp_path):
    write_tone(tmp_path / "long.wav", 1.0, 8000)  # 8000 frames
    write_tone(tmp_path / "short.wav", 0.3, 16000)
    return tmp_path


def test_nemo_manifest_whole_files_and_offset_segment(audio, tmp_path):
    man = _jsonl(tmp_path / "m.json", [
        {"audio_filepath": "short.wav", "text": "whole file", "duration": 0.3, "domain": "news"},
        {"audio_filepath": "long.wav", "text": "a segment", "offset": 0.25, "duration": 0.5},
        {"audio_filepath": "gone.wav", "text": "missing", "duration": 1.0},
    ])
    out = tmp_path / "out"
    recs = read_manifest(nemo_jsonl.prepare(man, out, split="train", echo=None))
    assert [(r["id"], r["text"], r["split"], r.get("domain")) for r in recs] == [
        ("short.wav", "whole file", "train", "news"), ("long.wav@0.250", "a segment", "train", None)]
    assert recs[0]["audio_filepath"] == str((audio / "short.wav").resolve())  # referenced in place
    seg = sf.info(recs[1]["audio_filepath"])
    # 0.5 s cut from an 8 kHz file, written at 16 kHz: 8000 frames
    assert (seg.samplerate, seg.frames) == (16000, 8000) and recs[1]["duration"] == pytest.approx(0.5)
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["id"], s["reason"]) for s in skipped] == [("gone.wav", "missing_audio")]


def test_lhotse_cuts_gz(audio, tmp_path):
    rec_long = {"id": "long", "sources": [{"type": "file", "channels": [0], "source": str(audio / "long.wav")}],
                "sampling_rate": 8000, "num_samples": 8000, "duration": 1.0}
    cuts = [
        {"id": "c1", "start": 0.5, "duration": 0.4, "channel": 0, "type": "MonoCut", "recording": rec_long,
         "supervisions": [
             {"id": "s2", "recording_id": "long", "start": 0.7, "duration": 0.2, "text": "world", "speaker": "bo"},
             {"id": "s1", "recording_id": "long", "start": 0.5, "duration": 0.2, "text": "hello", "speaker": "al",
              "custom": {"domain": "greetings"}},
         ]},
        {"id": "c2", "start": 0.0, "duration": 1.0, "channel": 0, "type": "MonoCut", "recording": rec_long,
         "supervisions": [{"id": "s3", "recording_id": "long", "start": 0, "duration": 1.0, "text": "all of it"}]},
        {"id": "c3", "start": 0.0, "duration": 1.0, "channel": 0, "type": "MonoCut",
         "recording": {"id": "u", "sources": [{"type": "url", "channels": [0], "source": "https://x/y.wav"}],
                       "sampling_rate": 16000, "duration": 1.0},
         "supervisions": [{"id": "s4", "recording_id": "u", "start": 0, "duration": 1.0, "text": "remote"}]},
        {"id": "m1", "type": "MixedCut", "tracks": []},
    ]
    out = tmp_path / "out"
    recs = read_manifest(nemo_jsonl.prepare(_jsonl(tmp_path / "cuts.jsonl.gz", cuts, gz=True), out, echo=None))
    got = {r["id"]: r for r in recs}
    assert sorted(got) == ["c1", "c2"]
    # supervisions in start order; speaker of the first; domain from its custom dict
    assert (got["c1"]["text"], got["c1"]["speaker"], got["c1"]["domain"]) == ("hello world", "al", "greetings")
    assert sf.info(got["c1"]["audio_filepath"]).frames == 6400  # 0.4 s at 16 kHz
    assert got["c2"]["audio_filepath"] == str((audio / "long.wav").resolve())
    skipped = {s["id"]: s["reason"] for s in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert skipped == {"c3": "unsupported", "m1": "unsupported"}


def test_lhotse_recordings_and_supervisions(audio, tmp_path):
    recs_m = _jsonl(tmp_path / "recordings.jsonl", [
        {"id": "long", "sources": [{"type": "file", "channels": [0], "source": "long.wav"}],
         "sampling_rate": 8000, "num_samples": 8000, "duration": 1.0}])
    sups = _jsonl(tmp_path / "supervisions.jsonl", [
        {"id": "a", "recording_id": "long", "start": 0.0, "duration": 0.25, "text": "first", "speaker": "k"},
        {"id": "b", "recording_id": "long", "start": 0.25, "duration": 0.75, "text": "second"},
        {"id": "c", "recording_id": "other", "start": 0.0, "duration": 0.5, "text": "orphan"},
    ])
    out = tmp_path / "out"
    recs = read_manifest(nemo_jsonl.prepare(recs_m, out, supervisions=sups, domain="d", echo=None))
    assert [(r["id"], r["text"], r.get("speaker"), r["domain"], r["duration"]) for r in recs] == [
        ("a", "first", "k", "d", 0.25), ("b", "second", None, "d", 0.75)]
    assert "no recording 'other'" in (out / "skipped.jsonl").read_text()


@pytest.mark.parametrize(
    "lines, kwargs, message",
    [
        ('{"audio_filepath": "short.wav", "text": "x"}\nnot json\n', {}, r"m.jsonl:2: not valid JSON"),
        ('{"path": "short.wav", "words": "x"}\n', {},
         r"neither a NeMo manifest line .* its keys are \['path', 'words'\]"),
        ('{"id": "r", "sources": []}\n', {}, r"is a Lhotse recordings manifest; give its supervisions manifest too"),
        ("\n", {}, r"holds no lines"),
        ('{"audio_filepath": "short.wav", "text": "  "}\n', {}, r"no usable utterance .*1 empty_text"),
    ],
)
def test_bad_manifests_raise_and_write_nothing(audio, tmp_path, lines, kwargs, message):
    (tmp_path / "m.jsonl").write_text(lines)
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match=message):
        nemo_jsonl.prepare(tmp_path / "m.jsonl", out, echo=None, **kwargs)
    assert not out.exists()


def test_cli_nemo(audio, tmp_path):
    man = _jsonl(tmp_path / "m.jsonl", [{"audio_filepath": "short.wav", "text": "hi", "duration": 0.3}])
    args = ["prep", "nemo", str(man), str(tmp_path / "out"), "--resample", "--source", "synthetic"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    [rec] = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert rec["source"] == "synthetic" and "/out/audio/" in rec["audio_filepath"]


def test_non_utf8_manifest_is_one_clear_error(tmp_path):
    (tmp_path / "m.jsonl").write_bytes(b'{"audio_filepath": "a.wav", "text": "ok"}\n{"audio_filepath": "b.wav", "text": "\xff"}\n')
    res = CliRunner().invoke(main, ["prep", "nemo", str(tmp_path / "m.jsonl"), str(tmp_path / "out")])
    assert res.exit_code == 2 and res.exception.__class__ is SystemExit
    assert "error: " in res.output and "m.jsonl:2: not UTF-8 text (byte 0xff at column 38)" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out").exists()
