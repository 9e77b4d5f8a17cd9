"""Manifests → datasets: decoding (mono, 16 kHz), carried fields, every skip path of the report, memory that
does not grow with the manifest, and length-grouped batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from asr_analogy.errors import ManifestError
from asr_analogy.io.audio import write_wav
from asr_analogy.io.manifest import write_manifest
from asr_analogy.speech.data import SKIP_REASONS, load_manifest_dataset


def tone(seconds: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture()
def corpus(tmp_path):
    """One usable clip plus one clip for each skip reason; returns (manifest path, {name: expected reason})."""
    d = tmp_path / "audio"
    d.mkdir()
    write_wav(d / "good.wav", tone(1.0))
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "nosamples.wav", np.zeros((0,), dtype=np.float32), 16000)  # valid header, 0 frames
    (d / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 8)
    write_wav(d / "silent.wav", np.zeros(16000, dtype=np.float32))
    write_wav(d / "long.wav", tone(30.5))
    write_wav(d / "short.wav", tone(0.05))
    expected = {
        "good.wav": None,
        "empty.wav": "empty_file",
        "nosamples.wav": "empty_file",
        "corrupt.wav": "unreadable",
        "silent.wav": "silent",
        "long.wav": "too_long",
        "short.wav": "too_short",
        "missing.wav": "missing",
        "good.wav#blank": "empty_text",
    }
    records = []
    for name in expected:
        text = "   " if name.endswith("#blank") else f"text of {name}"
        records.append({"audio_filepath": str(d / name.split("#")[0]), "text": text, "domain": "ivr"})
    manifest = write_manifest(records, tmp_path / "manifest.jsonl")
    return manifest, expected


def test_every_skip_reason_is_reported_and_the_good_clip_kept(corpus, tmp_path):
    manifest, expected = corpus
    ds, loaded = load_manifest_dataset(manifest, progress=False)
    # Loading decodes nothing: the silent clip is still in; reading it finds it and gives the next usable clip.
    assert len(ds) == 2 and loaded.n_kept == 2 and "silent" not in loaded.counts
    assert [ds[i]["text"] for i in range(2)] == ["text of good.wav", "text of good.wav"]
    report = ds.final_report()
    assert report.n_total == 9 and report.n_kept == 1
    got = {s["index"]: s["reason"] for s in report.skipped}
    for index, (name, reason) in enumerate(expected.items()):
        assert got.get(index) == reason, name
    assert report.counts == {
        "empty_file": 2, "unreadable": 1, "silent": 1, "too_long": 1, "too_short": 1, "missing": 1, "empty_text": 1
    }
    assert set(report.counts) == set(SKIP_REASONS)
    assert report.kept_seconds == pytest.approx(1.0)
    assert report.summary().startswith("kept 1 of 9 utterances (1.0 s); skipped 8:")

    out = report.write_json(tmp_path / "reports" / "skips.json")
    data = json.loads(out.read_text())
    assert data["n_skipped"] == 8 and data["counts"]["empty_file"] == 2
    by_path = {s["audio_filepath"].rsplit("/", 1)[-1]: s for s in data["skipped"] if s["reason"] != "empty_text"}
    assert by_path["missing.wav"]["detail"].endswith("does not exist")
    assert "30.50 s > max_duration_s 30 s" in by_path["long.wav"]["detail"]
    assert "dBFS" in by_path["silent.wav"]["detail"]


def test_decodes_to_mono_16k_float_and_keeps_fields(tmp_path):
    # 0.5 s of 44.1-kHz stereo: left 0.4 amplitude, right silent -> mono mean 0.2 amplitude, 8000 samples.
    sr = 44100
    t = np.arange(sr // 2) / sr
    left = 0.4 * np.sin(2 * np.pi * 300 * t)
    sf.write(tmp_path / "st.wav", np.stack([left, np.zeros_like(left)], 1).astype(np.float32), sr)
    rec = {"audio_filepath": "st.wav", "text": " Press one. ", "domain": "ivr", "speaker": "allison",
           "split": "train", "source": "real", "duration": 0.75, "extra": [1, 2]}
    manifest = write_manifest([rec], tmp_path / "m.jsonl")  # relative path, resolved against the manifest
    ds, report = load_manifest_dataset(manifest, progress=False)
    assert ds.durations.tolist() == [0.75]  # the manifest's duration, for batching
    row = ds[0]
    assert isinstance(row["audio"], np.ndarray) and row["audio"].dtype == np.float32
    assert row["audio"].shape == (8000,)
    peak = np.abs(row["audio"][500:-500]).max()
    assert peak == pytest.approx(0.2, abs=0.01)
    assert row["duration"] == pytest.approx(0.5)  # measured from the audio, not the manifest's 0.75
    assert row["text"] == "Press one."
    assert (row["domain"], row["speaker"], row["split"], row["source"], row["voice"]) == (
        "ivr", "allison", "train", "real", None
    )
    assert row["audio_filepath"] == str((tmp_path / "st.wav").resolve()) and row["index"] == 0
    assert report.skipped == []


def test_audio_context_limit_skips_clips_longer_than_the_window(tmp_path):
    write_wav(tmp_path / "a.wav", tone(3.0))
    write_wav(tmp_path / "b.wav", tone(5.0))
    recs = [{"audio_filepath": str(tmp_path / n), "text": "x"} for n in ("a.wav", "b.wav")]
    ds, report = load_manifest_dataset(recs, max_duration_s=4.0, progress=False)
    assert len(ds) == 1 and ds[0]["duration"] == pytest.approx(3.0)
    assert report.source == "<records>"
    assert [s["reason"] for s in report.skipped] == ["too_long"]


def test_silence_threshold_is_configurable(tmp_path):
    # amplitude 0.001 sine: RMS 0.001/sqrt(2) -> -63.0 dBFS: silent at -60, kept at -70.
    write_wav(tmp_path / "quiet.wav", tone(1.0, amp=0.001))
    recs = [{"audio_filepath": str(tmp_path / "quiet.wav"), "text": "x"}]
    ds, _ = load_manifest_dataset(recs, progress=False)
    with pytest.raises(ManifestError, match="1 silent"):
        ds[0]
    ds, _ = load_manifest_dataset(recs, silence_dbfs=-70.0, progress=False)
    assert ds[0]["text"] == "x"


def test_all_skipped_is_a_clear_error(tmp_path):
    write_wav(tmp_path / "silent.wav", np.zeros(8000, dtype=np.float32))
    manifest = write_manifest(
        [{"audio_filepath": "silent.wav", "text": "a"}, {"audio_filepath": "nope.wav", "text": "b"}],
        tmp_path / "m.jsonl",
    )
    ds, _ = load_manifest_dataset(manifest, progress=False)
    with pytest.raises(ManifestError, match=r"no usable utterances in .*m\.jsonl: all 2 skipped \(1 missing, 1 silent\)"):
        ds[0]
    (tmp_path / "nope.wav").write_bytes(b"")
    (tmp_path / "silent.wav").write_bytes(b"")
    with pytest.raises(ManifestError, match=r"all 2 skipped \(2 empty_file\)"):
        load_manifest_dataset(manifest, progress=False)


def test_empty_manifest_and_bad_records_are_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ManifestError, match="holds no utterances"):
        load_manifest_dataset(tmp_path / "empty.jsonl", progress=False)
    with pytest.raises(ManifestError, match="record 0: expected a dict with 'audio_filepath' and 'text'"):
        load_manifest_dataset([{"text": "no path"}], progress=False)
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest_dataset(tmp_path / "absent.jsonl", progress=False)
