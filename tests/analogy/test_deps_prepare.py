"""The recipe's corpus preparation goes through data_prep's table of preparers (no signature guessing)."""

from __future__ import annotations

import pytest

import data_prep
from asr_analogy.analogy import _deps
from asr_analogy.errors import ConfigError


def test_prepare_corpus_calls_the_table_entry(monkeypatch, tmp_path):
    calls = []

    def fake(corpus, out_dir, **options):
        calls.append((corpus, out_dir, options))
        return out_dir / "manifest.jsonl"

    monkeypatch.setitem(data_prep.PREPARERS, "slurp", data_prep.Preparer(fake))
    monkeypatch.setitem(data_prep.PREPARERS, "ivr_prompts", data_prep.Preparer(fake, download=lambda *a, **k: None))
    got = _deps.prepare_corpus("slurp", tmp_path, from_dir="/data/slurp", cache_dir="/c", options={"headset_only": True})
    assert got == tmp_path / "manifest.jsonl"
    assert calls[-1] == ("/data/slurp", tmp_path, {"headset_only": True})  # no cache_dir: slurp is not fetched
    _deps.prepare_corpus("ivr_prompts", tmp_path, cache_dir="/c")
    assert calls[-1] == (None, tmp_path, {"cache_dir": "/c"})  # fetched into the cache first
    with pytest.raises(ConfigError, match="'slurp' reads a local copy of the corpus: set corpus.from_dir"):
        _deps.prepare_corpus("slurp", tmp_path)
    with pytest.raises(ConfigError, match=r"corpus.preparer 'librispeech': unknown; choose from \['audiofolder'"):
        _deps.prepare_corpus("librispeech", tmp_path)
    assert _deps.preparer_exists("tabular") and not _deps.preparer_exists("librispeech")


def test_every_preparer_takes_corpus_then_out_dir():
    import inspect

    for name, entry in data_prep.PREPARERS.items():
        params = list(inspect.signature(entry.prepare).parameters.values())
        assert params[1].name == "out_dir" and params[0].kind is params[1].kind, name
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:]), name


def test_an_option_a_preparer_does_not_take_is_refused(tmp_path):
    from data_prep._common import CorpusError

    table = tmp_path / "t.csv"
    table.write_text("path,text\na.wav,hi\n")
    with pytest.raises(CorpusError, match=r"unknown option 'domian'; it takes domain, echo, force, resample, source"):
        data_prep.PREPARERS["tabular"].prepare(table, tmp_path / "out", domian="x")
    with pytest.raises(CorpusError, match=r"unknown option 'resample'"):
        data_prep.PREPARERS["hf_dataset"].prepare(tmp_path, tmp_path / "out2", resample=True)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
