"""Bad inputs of transcribe, evaluate, finetune and synthesize found by the CLI sweep: each is refused with a
message naming the problem, and nothing is written or changed (inputs hashed before and after)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asr_analogy.cli import main


def _hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted([root] if root.is_file() else root.rglob("*")):
        h.update(str(p).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _refused(argv: list[str], inputs: Path, message: str, out: Path | None = None) -> None:
    before = _hash(inputs)
    result = CliRunner().invoke(main, [str(a) for a in argv])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert message in result.output, result.output
    assert _hash(inputs) == before
    if out is not None:
        assert not out.exists()


def test_transcribe_refuses_an_empty_manifest_and_a_zero_token_cap(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.jsonl").write_text("")
    (tmp_path / "in" / "m.jsonl").write_text('{"audio_filepath": "a.wav", "text": "a"}\n')
    out = tmp_path / "h.jsonl"
    _refused(["transcribe", tmp_path / "model", tmp_path / "in" / "empty.jsonl", out], tmp_path / "in",
             "empty.jsonl: no record to transcribe (the manifest is empty)", out)
    _refused(["transcribe", tmp_path / "model", tmp_path / "in" / "m.jsonl", out, "--max-new-tokens", "0"],
             tmp_path / "in", "max_new_tokens must be >= 1, got 0", out)
    _refused(["transcribe", tmp_path / "model", tmp_path / "in" / "m.jsonl", out, "--device", "tpu"],
             tmp_path / "in", "unknown device 'tpu'", out)


def test_transcribe_refuses_when_no_clip_can_be_read(tiny_whisper_dir, tmp_path):
    man = tmp_path / "m.jsonl"
    man.write_text('{"audio_filepath": "/nonexistent/a.wav", "text": "a"}\n'
                   '{"audio_filepath": "/nonexistent/b.wav", "text": "b"}\n')
    out = tmp_path / "h.jsonl"
    _refused(["transcribe", tiny_whisper_dir, man, out, "--device", "cpu"], man,
             "none of the 2 clips could be read", out)


@pytest.fixture
def hyps(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rec = {"id": "u1", "audio_filepath": "a.wav", "text": "press one", "hypothesis": "press one"}
    (d / "dup.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(rec | {"id": "u2"}) + "\n" + json.dumps(rec) + "\n")
    (d / "empty.jsonl").write_text("")
    (d / "ok.jsonl").write_text(json.dumps(rec) + "\n")
    return d


def test_evaluate_refuses_duplicate_ids_empty_input_and_negative_bootstrap(hyps, tmp_path):
    out = tmp_path / "s.json"
    _refused(["evaluate", hyps / "dup.jsonl", "--out", out], hyps,
             "records #1 and #3 share the id 'u1'; each utterance must be scored once (duplicate id)", out)
    _refused(["evaluate", hyps / "empty.jsonl", "--out", out], hyps, "no record to score (the file is empty)", out)
    _refused(["evaluate", hyps / "ok.jsonl", "--bootstrap", "-5", "--out", out], hyps,
             "bootstrap must be >= 0 resamples, got -5", out)


def test_finetune_refuses_an_unknown_scheduler_before_any_work(tmp_path):
    cfg = tmp_path / "in" / "ft.yaml"
    cfg.parent.mkdir()
    cfg.write_text(f"model: {tmp_path / 'model'}\ntrain_manifest: {tmp_path / 'm.jsonl'}\n"
                   f"output_dir: {tmp_path / 'ft'}\nlr_scheduler: cosin\n")
    _refused(["finetune", cfg], cfg.parent, "unknown scheduler 'cosin'; choose one of linear, cosine", tmp_path / "ft")
    cfg.write_text(cfg.read_text().replace("cosin", "linear"))
    _refused(["finetune", cfg, "--set", "lr_scheduler=linaer"], cfg.parent, "unknown scheduler 'linaer'",
             tmp_path / "ft")


def test_synthesize_refuses_a_line_over_the_word_limit(tmp_path):
    from asr_analogy.speech.tts.pipeline import MAX_WORDS

    src = tmp_path / "in" / "long.txt"
    src.parent.mkdir()
    src.write_text(" ".join(["word"] * 480) + "\n")
    out = tmp_path / "out"
    _refused(["synthesize", src, out, "--backend", "espeak", "-j", "1", "--cache-dir", tmp_path / "cache"],
             src.parent, f"480 words: longer than the {MAX_WORDS}-word limit of one sentence")
    skips = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert [s["reason"] for s in skips] == ["too_long"] and not (out / "manifest.jsonl").exists()


def test_synthesize_force_keeps_the_old_output_until_the_new_one_is_complete(tmp_path, monkeypatch):
    from asr_analogy.speech.tts import pipeline, synthesize

    src = tmp_path / "s.txt"
    src.write_text("press one for sales\nplease hold\n")
    out = tmp_path / "out"
    synthesize(src, out, backend="espeak", workers=1, cache_dir=tmp_path / "cache", progress=False)
    before = _hash(out)
    real, calls = pipeline.run_task, []

    def killed_on_second(task, engine):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed midway")
        return real(task, engine)

    monkeypatch.setattr(pipeline, "run_task", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        synthesize(src, out, backend="espeak", workers=1, cache_dir=tmp_path / "cache", seed=7, force=True,
                   progress=False)
    assert _hash(out) == before  # the finished output is intact: marker, manifest, wavs; no staging left
    monkeypatch.setattr(pipeline, "run_task", real)
    synthesize(src, out, backend="espeak", workers=1, cache_dir=tmp_path / "cache", seed=7, force=True,
               progress=False)
    recs = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["seed"] != 0 for r in recs} == {True} and all((out / r["audio_filepath"]).is_file() for r in recs)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "skipped.jsonl", "synthesized.json", "wavs"]
    assert len(list((out / "wavs").iterdir())) == 2
