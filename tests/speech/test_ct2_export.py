"""export-ct2 writes a self-contained CTranslate2 directory; the ctranslate2 engine of transcribe decodes it (or a
transformers directory exported on the fly) to the same greedy transcripts as the transformers engine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_ct2_multilingual import multilingual_dir, multilingual_state  # noqa: F401  (fixtures used below)

from asr_analogy.cli import main
from asr_analogy.errors import ConfigError
from asr_analogy.io.manifest import read_manifest
from asr_analogy.speech.ct2_engine import Ct2Whisper, max_length_for
from asr_analogy.speech.models.ct2_export import export_ct2
from asr_analogy.speech.transcribe import transcribe

ctranslate2 = pytest.importorskip("ctranslate2")


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def ct2_dir(tiny_whisper_dir, tmp_path_factory) -> Path:
    return export_ct2(tiny_whisper_dir, tmp_path_factory.mktemp("ct2") / "float32", "float32")


def _hyps(records) -> list[str]:
    return [r["hypothesis"] for r in records]


def test_export_is_self_contained_and_loads_in_ctranslate2(ct2_dir, tiny_whisper_dir):
    names = {p.name for p in ct2_dir.iterdir()}
    assert {"model.bin", "config.json", "tokenizer.json", "preprocessor_config.json", "generation_config.json"} <= names
    assert not [n for n in names if n.startswith(".")]
    # faster-whisper reads the number of mel bins from preprocessor_config.json; the window is the model's.
    pre = json.loads((ct2_dir / "preprocessor_config.json").read_text())
    assert pre["feature_size"] == 80 and pre["nb_max_frames"] == 3000
    gen = json.loads((tiny_whisper_dir / "generation_config.json").read_text())
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    assert ct2_config["suppress_ids"] == gen["suppress_tokens"]
    assert ct2_config["suppress_ids_begin"] == gen["begin_suppress_tokens"]
    runtime = ctranslate2.models.Whisper(str(ct2_dir), device="cpu")
    assert runtime.n_mels == 80 and not runtime.is_multilingual
    try:
        import faster_whisper
    except ImportError:
        return
    faster_whisper.WhisperModel(str(ct2_dir), device="cpu")


def test_ctranslate2_greedy_equals_transformers_greedy(ct2_dir, tiny_whisper_dir, speech_manifest):
    expected = _hyps(transcribe(tiny_whisper_dir, speech_manifest, batch_size=2, device="cpu", progress=False))
    assert all(expected) and len(set(expected)) == len(expected)  # each clip its own text: a mix-up shows
    got = transcribe(ct2_dir, speech_manifest, batch_size=2, engine="ctranslate2", progress=False)
    assert _hyps(got) == expected
    assert [{k: v for k, v in r.items() if k != "hypothesis"} for r in got] == read_manifest(speech_manifest)
    # A transformers directory exported on the fly, and a loaded engine, decode the same.
    on_the_fly = transcribe(tiny_whisper_dir, speech_manifest, batch_size=3, engine="ctranslate2", progress=False)
    assert _hyps(on_the_fly) == expected
    assert _hyps(transcribe(Ct2Whisper(ct2_dir), speech_manifest, batch_size=1, progress=False)) == expected


def test_suppressed_tokens_are_the_generation_config_ones(tiny_whisper_dir, speech_manifest, tmp_path):
    """Suppress tokens the model does emit (anywhere, and first): both engines must avoid the same ones."""
    import shutil

    from transformers import AutoTokenizer

    before = _hyps(transcribe(tiny_whisper_dir, speech_manifest, device="cpu", progress=False))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_whisper_dir))
    ids = [tokenizer(text, add_special_tokens=False).input_ids for h in before for text in (h, " " + h)]
    model = shutil.copytree(tiny_whisper_dir, tmp_path / "suppressing")
    gen = json.loads((model / "generation_config.json").read_text())
    gen["suppress_tokens"] = sorted(set(gen["suppress_tokens"]) | {i for t in ids for i in t[1:]})
    gen["begin_suppress_tokens"] = sorted(set(gen["begin_suppress_tokens"]) | {t[0] for t in ids})
    (model / "generation_config.json").write_text(json.dumps(gen))
    expected = _hyps(transcribe(model, speech_manifest, device="cpu", progress=False))
    assert all(a != b for a, b in zip(expected, before))  # the suppression changes every transcript
    assert _hyps(transcribe(model, speech_manifest, engine="ctranslate2", progress=False)) == expected


@pytest.mark.parametrize("cap", [1, 3])
def test_token_cap_is_the_transformers_one(ct2_dir, tiny_whisper_dir, speech_manifest, cap):
    expected = _hyps(transcribe(tiny_whisper_dir, speech_manifest, device="cpu", max_new_tokens=cap, progress=False))
    got = _hyps(transcribe(ct2_dir, speech_manifest, engine="ctranslate2", max_new_tokens=cap, progress=False))
    assert got == expected
    full = _hyps(transcribe(ct2_dir, speech_manifest, engine="ctranslate2", progress=False))
    assert all(len(g) < len(f) for g, f in zip(got, full))


def test_max_length_for_gives_exactly_the_new_tokens():
    # CTranslate2 generates min(max_length // 2, max_length - (prompt - 1)) tokens.
    for prompt in (2, 4):
        for new in (1, 2, 3, 5, 446):
            length = max_length_for(new, prompt)
            assert min(length // 2, length - (prompt - 1)) == new
    assert max_length_for(446, 2) == 892 and max_length_for(1, 4) == 4


def test_multilingual_language_and_task_are_forced(multilingual_dir, speech_manifest, tmp_path):  # noqa: F811
    out = export_ct2(multilingual_dir, tmp_path / "ct2", "float32")
    records = read_manifest(speech_manifest)
    for kwargs in ({}, {"language": "fr", "task": "translate"}):
        expected = _hyps(transcribe(multilingual_dir, records, device="cpu", progress=False, **kwargs))
        assert _hyps(transcribe(out, records, engine="ctranslate2", progress=False, **kwargs)) == expected
    with pytest.raises(ConfigError, match="'xx' is not one of the model's 99 languages"):
        transcribe(out, records, engine="ctranslate2", language="xx")


def test_int8_export_is_smaller_and_decodes(tiny_whisper_dir, ct2_dir, speech_manifest, tmp_path):
    r = CliRunner().invoke(main, ["export-ct2", str(tiny_whisper_dir), str(tmp_path / "int8"), "--quantization", "int8"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "int8" / "model.bin").stat().st_size < 0.5 * (ct2_dir / "model.bin").stat().st_size
    got = transcribe(tmp_path / "int8", speech_manifest, engine="ctranslate2", progress=False)
    assert len(got) == 3 and all(r["hypothesis"] for r in got)


def test_export_errors_name_the_input_and_write_nothing(tiny_whisper_dir, ct2_dir, tmp_path):
    before = _digest(tiny_whisper_dir)
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "o1")], "does not exist"),
        ([str(ct2_dir), str(tmp_path / "o2")], "already a CTranslate2 model"),
        ([str(tiny_whisper_dir), str(tiny_whisper_dir / "sub")], "lies inside the input"),
        ([str(tiny_whisper_dir), str(ct2_dir)], "already exists"),
        ([str(tiny_whisper_dir), str(tmp_path / "o3"), "--quantization", "int4"], "Invalid value"),
    ]
    (tmp_path / "not-whisper").mkdir()
    (tmp_path / "not-whisper" / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    cases.append(([str(tmp_path / "not-whisper"), str(tmp_path / "o4")], "not model_type 'wav2vec2'"))
    for args, message in cases:
        r = CliRunner().invoke(main, ["export-ct2", *args])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("o", ".o"))]
    assert _digest(tiny_whisper_dir) == before


def test_engine_options_are_checked(tiny_whisper_dir, ct2_dir, speech_manifest):
    with pytest.raises(ConfigError, match="compute_type does not apply to the transformers engine"):
        transcribe(tiny_whisper_dir, speech_manifest, compute_type="int8")
    with pytest.raises(ConfigError, match="generate_kwargs does not apply to the ctranslate2 engine"):
        transcribe(ct2_dir, speech_manifest, engine="ctranslate2", generate_kwargs={"num_beams": 2})
    with pytest.raises(ConfigError, match="engine must be one of"):
        transcribe(ct2_dir, speech_manifest, engine="onnx")
    with pytest.raises(ConfigError, match="device 'mps'"):
        transcribe(ct2_dir, speech_manifest, engine="ctranslate2", device="mps")
