"""Hugging Face dataset importer: saved DatasetDict with Audio bytes or paths, read without torchcodec."""

from __future__ import annotations

import io
import json

import datasets
import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.io.manifest import read_manifest
from data_prep import hf_dataset
from data_prep._common import CorpusError
from tests.data_prep._audio import snapshot, write_tone

_AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _wav_bytes(seconds: float, sr: int) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(round(seconds * sr))) / sr
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _dataset(audio: list[dict], text: list[str], **extra) -> datasets.Dataset:
    """A Dataset with an Audio column built from raw {bytes, path} structs (encoding needs no torchcodec)."""
    table = pa.table({"audio": pa.array(audio, type=_AUDIO), "sentence": text, **extra})
    features = datasets.Features({"audio": datasets.Audio(), "sentence": datasets.Value("string"),
                                  **{k: datasets.Value("string") for k in extra}})
    return datasets.Dataset(table).cast(features)


@pytest.fixture
def saved(tmp_path):
    local = write_tone(tmp_path / "local.wav", 0.25, 16000)
    train = _dataset(
        [{"bytes": _wav_bytes(0.5, 8000), "path": "a.wav"}, {"bytes": None, "path": str(local)},
         {"bytes": b"garbage", "path": "c.wav"}],
        ["first clip", "second clip", "third clip"],
        domain=["weather", "weather", "news"],
    )
    dev = _dataset([{"bytes": _wav_bytes(0.3, 16000), "path": "d.wav"}], ["dev clip"], domain=["news"])
    path = tmp_path / "saved"
    datasets.DatasetDict({"train": train, "validation": dev}).save_to_disk(str(path))
    return path


def test_saved_dataset_dict_to_wavs(saved, tmp_path):
    before = snapshot(saved)
    out = tmp_path / "out"
    recs = read_manifest(hf_dataset.prepare(saved, out, echo=None))
    got = {r["id"]: r for r in recs}
    assert sorted(got) == ["train/000000", "train/000001", "validation/000000"]
    assert [got[k]["text"] for k in sorted(got)] == ["first clip", "second clip", "dev clip"]
    assert [got[k]["split"] for k in sorted(got)] == ["train", "train", "dev"]
    assert [got[k]["domain"] for k in sorted(got)] == ["weather", "weather", "news"]
    # 0.5 s at 8 kHz -> 8000 frames at 16 kHz; every file is 16 kHz mono under OUT_DIR/audio
    info = sf.info(got["train/000000"]["audio_filepath"])
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 8000)
    assert got["train/000001"]["duration"] == pytest.approx(0.25)
    assert all(r["audio_filepath"].startswith(str(out.resolve() / "audio")) for r in recs)
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["id"], s["reason"]) for s in skipped] == [("train/000002", "unreadable_audio")]
    assert snapshot(saved) == before  # the saved dataset is only read


def test_split_selection_and_id_column(saved, tmp_path):
    recs = read_manifest(hf_dataset.prepare(saved, tmp_path / "out", splits=["validation"], id_column="sentence",
                                            domain="unused-when-labelled", echo=None))
    assert [(r["id"], r["split"], r["domain"]) for r in recs] == [("dev clip", "dev", "news")]


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    message = r"some-org/some-speech is not a local directory and the hub is offline.*save_to_disk"
    with pytest.raises(CorpusError, match=message):
        hf_dataset.prepare("some-org/some-speech", out, echo=None)
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text_column": "words"},
         r"split 'train' has no text column 'words'; its columns are \['audio', 'sentence', 'domain'\]"),
        ({"audio_column": "speech"}, r"split 'train' has no audio column 'speech'"),
        ({"audio_column": "domain"}, None),  # a string column is taken as paths: all missing -> no usable utterance
        ({"splits": ["test"]}, r"has no split \['test'\]; it has \['train', 'validation'\]"),
    ],
)
def test_bad_columns_raise_and_write_nothing(saved, tmp_path, kwargs, message):
    out = tmp_path / "out"
    with pytest.raises(CorpusError, match=message or "no usable utterance.*4 missing_audio"):
        hf_dataset.prepare(saved, out, echo=None, **kwargs)
    assert not out.exists()


def test_not_a_saved_dataset(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(CorpusError, match="is not a dataset saved with save_to_disk"):
        hf_dataset.prepare(tmp_path / "folder", tmp_path / "out", echo=None)
    assert not (tmp_path / "out").exists()


def test_cli_hf_dataset(saved, tmp_path):
    res = CliRunner().invoke(main, ["prep", "hf-dataset", str(saved), str(tmp_path / "out"), "--split", "train"])
    assert res.exit_code == 0, res.output
    assert "2 utterances" in res.output and "1 unreadable_audio" in res.output
    res = CliRunner().invoke(main, ["prep", "hf-dataset", "org/name", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "hub is offline" in res.output
