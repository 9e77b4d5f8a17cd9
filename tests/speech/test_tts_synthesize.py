"""synthesize(): plan, cache, skip report, resume, bad input, CLI — on a counting fake backend (no models)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import ConfigError, ManifestError, OutputExistsError
from asr_analogy.speech.tts import (
    TTSBackend,
    TTSError,
    VoiceNotFoundError,
    read_sentences,
    register_backend,
    synthesize,
)


class FakeBackend(TTSBackend):
    """A sine per voice (a: 200 Hz, b: 300 Hz) plus seeded noise, 0.1 s per word, at 8 kHz. Counts its calls.
    Text containing FAIL raises; SILENT returns zeros; KILL raises KeyboardInterrupt (a killed run)."""

    name = "fake"
    default_voice = "a"
    native_pitch = True
    calls: list = []

    def list_voices(self):
        return ["a", "b"]

    def version(self):
        return "fake 1"

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        FakeBackend.calls.append((text, voice, seed, speed))
        if "KILL" in text:
            raise KeyboardInterrupt
        if "FAIL" in text:
            raise RuntimeError("engine exploded")
        n = int(800 * len(text.split()) / speed)
        if "SILENT" in text:
            return np.zeros(n, np.float32), 8000
        t = np.arange(n) / 8000
        f = {"a": 200.0, "b": 300.0}[voice]
        noise = np.random.default_rng(seed).standard_normal(n) * 0.01
        return (0.3 * np.sin(2 * np.pi * f * t) + noise).astype(np.float32), 8000


register_backend("fake", FakeBackend)


@pytest.fixture(autouse=True)
def _reset_calls():
    FakeBackend.calls.clear()


def run(texts, out, cache, **kw):
    kw.setdefault("backend", "fake")
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return synthesize(texts, out, cache_dir=cache, **kw)


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_manifest_wavs_and_plan(tmp_path):
    texts = ["one two", "three four five", "six"]
    manifest = run(texts, tmp_path / "out", tmp_path / "cache", voices=["a", "b"], speeds=[1.0, 2.0],
                   samples_per_sentence=2)
    recs = lines(manifest)
    # combos (a,1) (a,2) (b,1) (b,2); sample k of sentence i uses combo (2i + k) mod 4
    assert [(r["id"], r["voice"], r["speed"]) for r in recs] == [
        ("s00001-0", "a", 1.0), ("s00001-1", "a", 2.0),
        ("s00002-0", "b", 1.0), ("s00002-1", "b", 2.0),
        ("s00003-0", "a", 1.0), ("s00003-1", "a", 2.0),
    ]
    for rec in recs:
        audio, sr = sf.read(tmp_path / "out" / rec["audio_filepath"])
        assert sr == 16_000 and audio.ndim == 1
        words = len(rec["text"].split())
        assert rec["duration"] == pytest.approx(0.1 * words / rec["speed"], abs=0.002)  # 8 kHz -> 16 kHz kept length
        assert len(audio) / 16_000 == pytest.approx(rec["duration"], abs=1e-4)
        assert np.abs(audio).max() == pytest.approx(10 ** (-1 / 20), abs=1e-3)  # peak at -1 dBFS
        assert rec["source"] == "synthetic" and rec["speaker"] == f"fake:{rec['voice']}"
    assert not (tmp_path / "out" / "skipped.jsonl").read_text()
    summary = json.loads((tmp_path / "out" / "synthesized.json").read_text())
    assert summary["synthesized"] == 6 and summary["from_cache"] == 0 and summary["samples_written"] == 6


def test_second_run_synthesizes_nothing(tmp_path):
    texts = ["hello there", "press one"]
    run(texts, tmp_path / "out1", tmp_path / "cache", voices=["a", "b"], samples_per_sentence=3)
    assert len(FakeBackend.calls) == 6
    # another output dir, same samples: everything from the cache, identical audio
    run(texts, tmp_path / "out2", tmp_path / "cache", voices=["a", "b"], samples_per_sentence=3)
    assert len(FakeBackend.calls) == 6
    for name in ("s00001-0.wav", "s00002-2.wav"):
        assert (tmp_path / "out1/wavs" / name).read_bytes() == (tmp_path / "out2/wavs" / name).read_bytes()
    assert json.loads((tmp_path / "out2/synthesized.json").read_text())["synthesized"] == 0
    # the same output dir again: already complete, returns at once
    before = (tmp_path / "out2/manifest.jsonl").stat().st_mtime_ns
    run(texts, tmp_path / "out2", tmp_path / "cache", voices=["a", "b"], samples_per_sentence=3)
    assert (tmp_path / "out2/manifest.jsonl").stat().st_mtime_ns == before
    # a changed parameter is a new sample: only those are synthesized
    run(texts, tmp_path / "out3", tmp_path / "cache", voices=["a", "b"], samples_per_sentence=3, seed=1)
    assert len(FakeBackend.calls) == 12


def test_seeded_output_is_deterministic_across_caches(tmp_path):
    run(["alpha beta"], tmp_path / "o1", tmp_path / "c1", seed=5)
    run(["alpha beta"], tmp_path / "o2", tmp_path / "c2", seed=5)
    run(["alpha beta"], tmp_path / "o3", tmp_path / "c3", seed=6)
    wav = "wavs/s00001-0.wav"
    assert (tmp_path / "o1" / wav).read_bytes() == (tmp_path / "o2" / wav).read_bytes()
    assert (tmp_path / "o1" / wav).read_bytes() != (tmp_path / "o3" / wav).read_bytes()


def test_channel_applies_after_the_cache(tmp_path):
    run(["alpha beta gamma"], tmp_path / "clean", tmp_path / "cache")
    run(["alpha beta gamma"], tmp_path / "tel", tmp_path / "cache", channel="telephone")
    assert len(FakeBackend.calls) == 1  # the telephone version reuses the cached clean audio
    rec = lines(tmp_path / "tel/manifest.jsonl")[0]
    assert rec["channel"] == "telephone"

    def share_near_200_hz(path):
        audio, _ = sf.read(path)
        spec = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / 16_000)
        return spec[(freqs > 150) & (freqs < 250)].sum() / spec.sum()

    # voice a is a 200 Hz tone over faint white noise; the 300 Hz high-pass takes the tone down about 31 dB
    assert share_near_200_hz(tmp_path / "clean/wavs/s00001-0.wav") > 0.95
    assert share_near_200_hz(tmp_path / "tel/wavs/s00001-0.wav") < 0.5


def test_skip_report_and_one_failure_does_not_stop_the_batch(tmp_path):
    texts = ["good one", "", "?!", "FAIL here", "SILENT now", "\u65e5\u672c", "good two"]
    manifest = run(texts, tmp_path / "out", tmp_path / "cache")
    assert [r["text"] for r in lines(manifest)] == ["good one", "good two"]
    skipped = {s["id"]: s for s in lines(tmp_path / "out/skipped.jsonl")}
    assert {k: v["reason"] for k, v in skipped.items()} == {
        "s00002": "empty_text",
        "s00003": "no_words",
        "s00004-0": "tts_error",
        "s00005-0": "silent_output",
        "s00006": "unsupported_characters",
    }
    assert "RuntimeError: engine exploded" in skipped["s00004-0"]["detail"]
    assert "CJK UNIFIED IDEOGRAPH" in skipped["s00006"]["detail"]
    assert not (tmp_path / "out/wavs/s00004-0.wav").exists()
    assert not list((tmp_path / "cache").rglob("*.tmp-*"))


def test_all_failing_raises_and_writes_no_manifest(tmp_path):
    with pytest.raises(TTSError, match="no audio was synthesized"):
        run(["FAIL a", "FAIL b"], tmp_path / "out", tmp_path / "cache")
    assert not (tmp_path / "out/manifest.jsonl").exists()
    assert not (tmp_path / "out/synthesized.json").exists()
    assert len(lines(tmp_path / "out/skipped.jsonl")) == 2


def test_killed_run_resumes_from_the_cache(tmp_path):
    texts = ["one", "two", "KILL three", "four"]
    with pytest.raises(KeyboardInterrupt):
        run(texts, tmp_path / "out", tmp_path / "cache")
    out = tmp_path / "out"
    assert not (out / "manifest.jsonl").exists() and not (out / "synthesized.json").exists()
    assert [p.name for p in out.iterdir()] == []  # the samples made went to a staging folder, removed on the way out
    assert len(list((tmp_path / "cache").rglob("*.wav"))) == 2
    FakeBackend.calls.clear()
    texts[2] = "three"
    run(texts, out, tmp_path / "cache")
    assert [c[0] for c in FakeBackend.calls] == ["three", "four"]  # one and two came from the cache
    assert len(lines(out / "manifest.jsonl")) == 4


def test_input_manifest_fields_are_carried(tmp_path):
    src = tmp_path / "real.jsonl"
    src.write_text(
        json.dumps({"id": "vm-goodbye", "audio_filepath": "a/vm-goodbye.wav", "text": "Goodbye", "duration": 1.2,
                    "domain": "voicemail", "split": "train", "speaker": "allison", "source": "real"}) + "\n"
        + json.dumps({"audio_filepath": "digits/1.wav", "text": "one", "domain": "digits", "split": "test"}) + "\n"
    )
    recs = lines(run(src, tmp_path / "out", tmp_path / "cache"))
    assert recs[0]["id"] == "vm-goodbye-0" and recs[0]["source_id"] == "vm-goodbye"
    assert (recs[0]["domain"], recs[0]["split"], recs[0]["source"], recs[0]["speaker"]) == (
        "voicemail", "train", "synthetic", "fake:a")
    assert recs[0]["duration"] == pytest.approx(0.1, abs=0.002)
    assert recs[1]["id"] == "1-0" and recs[1]["domain"] == "digits"
    no_fields = lines(run(src, tmp_path / "out_bare", tmp_path / "cache", keep_fields=False))
    assert "domain" not in no_fields[0] and no_fields[0]["source_id"] == "vm-goodbye"


def test_read_sentences_text_file_and_unique_ids(tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_text("Hello.\n\n  World  \n")
    assert [(r["id"], r["text"]) for r in read_sentences(txt)] == [("line00001", "Hello."), ("line00003", "World")]
    recs = read_sentences([{"id": "a/b", "text": "x"}, {"id": "a b", "text": "y"}])
    assert [r["id"] for r in recs] == ["a_b", "a_b_2"]


# ---- bad input: a clear error and nothing written --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"voices": ["zz"]}, VoiceNotFoundError, "voice 'zz' is not installed; available: a, b"),
        ({"backend": "nope"}, ConfigError, "unknown TTS backend 'nope'; available: .*espeak.*piper"),
        ({"channel": "radio"}, ConfigError, "unknown type 'radio'"),
        ({"samples_per_sentence": 0}, ConfigError, "samples_per_sentence"),
        ({"speeds": [9.0]}, ConfigError, "speed must be"),
        ({"pitches": [30.0]}, ConfigError, "pitch must be"),
    ],
)
def test_bad_options_write_nothing(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        run(["hello"], tmp_path / "out", tmp_path / "cache", **kwargs)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "content, name, message",
    [
        (None, "missing.txt", "does not exist"),
        ("\n \n", "empty.txt", "holds no sentences"),
        ('{"text": "ok"}\n{broken\n', "bad.jsonl", r"bad.jsonl:2: not valid JSON"),
        ('{"sentence": "no text field"}\n', "nofield.jsonl", r"nofield.jsonl:1: expected a JSON object with a string"),
    ],
)
def test_bad_input_files(tmp_path, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        run(path, tmp_path / "out", tmp_path / "cache")
    assert not (tmp_path / "out").exists()


def test_finished_output_is_not_overwritten_without_force(tmp_path):
    run(["hello"], tmp_path / "out", tmp_path / "cache")
    with pytest.raises(OutputExistsError, match="other settings; pass force"):
        run(["hello", "world"], tmp_path / "out", tmp_path / "cache")
    assert len(lines(tmp_path / "out/manifest.jsonl")) == 1
    run(["world"], tmp_path / "out", tmp_path / "cache", force=True)
    assert [r["text"] for r in lines(tmp_path / "out/manifest.jsonl")] == ["world"]
    assert sorted(p.name for p in (tmp_path / "out/wavs").iterdir()) == ["s00001-0.wav"]


# ---- CLI -------------------------------------------------------------------------------------------------


def test_cli_synthesize_and_errors(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Press 1 for sales.\n###\n")
    runner = CliRunner()
    args = ["synthesize", "--backend", "fake", "-v", "a,b", "-n", "2", "--workers", "1", "--channel", "telephone",
            "--cache-dir", str(tmp_path / "cache"), str(src), str(tmp_path / "out")]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    recs = lines(tmp_path / "out/manifest.jsonl")
    assert [(r["voice"], r["tts_text"]) for r in recs] == [("a", "Press one for sales."), ("b", "Press one for sales.")]
    assert lines(tmp_path / "out/skipped.jsonl")[0]["reason"] == "no_words"

    bad = runner.invoke(main, ["synthesize", "--backend", "fake", "-v", "c", str(src), str(tmp_path / "out2")])
    assert bad.exit_code == 2
    assert "error: fake: voice 'c' is not installed; available: a, b" in bad.output
    assert not (tmp_path / "out2").exists()

    voices = runner.invoke(main, ["list-voices", "--backend", "fake"])
    assert voices.exit_code == 0 and voices.output.split() == ["a", "b"]
