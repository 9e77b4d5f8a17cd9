"""The recipe's decoding settings reach the decoder, and the repetition guard changes the cache keys only when it
is on (results made before it existed stay valid)."""

from __future__ import annotations

from types import SimpleNamespace

from asr_analogy.analogy import _deps
from asr_analogy.analogy.config import EvaluateConfig
from asr_analogy.analogy.decoding import Decoder


def test_the_guard_is_in_the_cache_key_only_when_on():
    assert EvaluateConfig().decoding() == {"beams": 1, "max_new_tokens": None}
    assert EvaluateConfig(repetition_guard=True, num_beams=2).decoding() == {
        "beams": 2, "max_new_tokens": None, "repetition_guard": True}


def test_the_decoder_passes_the_guard_and_token_cap_to_transcribe(monkeypatch):
    seen = []

    def fake_transcribe(model, records, **kw):
        seen.append(kw)
        return [{**r, "hypothesis": "x"} for r in records]

    monkeypatch.setattr(_deps, "transcribe", fake_transcribe)
    monkeypatch.setattr(Decoder, "_load", lambda self, d: (object(), object(), SimpleNamespace(lam=None)))
    for on in (False, True):
        decoder = Decoder("cpu", EvaluateConfig(repetition_guard=on, max_new_tokens=50))
        assert decoder.hyps("m", [{"id": "a", "audio_filepath": "a.wav"}])[0]["hypothesis"] == "x"
        assert (seen[-1]["repetition_guard"], seen[-1]["max_new_tokens"]) == (on, 50)
