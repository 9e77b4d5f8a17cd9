"""The repetition guard: a transcript that ran to the token cap in a loop keeps one copy of the loop (hand-made
token sequences), in both decoding engines; transcripts that ended on their own are unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from asr_analogy.io.manifest import read_manifest
from asr_analogy.speech.repetition import cut_loop, guard
from asr_analogy.speech.transcribe import load_asr_model, transcribe


@pytest.mark.parametrize("tokens, expected", [
    ([1, 2, 3, 3, 3, 3], [1, 2, 3]),                 # period 1
    ([9, 1, 2, 1, 2, 1, 2, 1], [9, 1, 2]),           # period 2, the last copy partial
    ([4, 4, 4], [4]),                                # the whole output is the loop
    ([5, 6, 7, 5, 6, 7, 5, 6, 7], [5, 6, 7]),        # period 3, exactly 3 copies
    ([5, 6, 7, 5, 6, 7, 5, 6], [5, 6, 7, 5, 6, 7, 5, 6]),  # 2 copies and a part: fewer than 3, kept
    ([1, 2, 3, 4], [1, 2, 3, 4]),                    # no loop
    ([1, 1, 2, 1, 1, 2, 1, 1, 2, 2], [1, 1, 2, 1, 1, 2, 1, 1, 2, 2]),  # the tail "2 2" is 2 copies only
    ([], []),
])
def test_cut_loop_keeps_the_first_copy_of_a_tail_of_three_or_more(tokens, expected):
    assert cut_loop(tokens) == expected


def test_cut_loop_prefers_the_period_that_keeps_least_and_guard_leaves_finished_outputs():
    # two periods qualify: period 1 ("2 2 2" at the end) would keep 10 tokens, period 4 ("1 2 2 2") keeps 4
    assert cut_loop([1, 2, 2, 2] * 3) == [1, 2, 2, 2]
    # only period 1 qualifies ("3 8" is repeated 2.5 times: too few)
    assert cut_loop([0, 3, 8, 3, 8, 3, 8, 8, 8, 8]) == [0, 3, 8, 3, 8, 3, 8]
    assert cut_loop([0, 3, 8, 3, 8, 3, 8]) == [0, 3, 8]
    assert cut_loop([7, 7], min_copies=2) == [7]
    assert guard([1, 2, 2, 2], reached_cap=False) == [1, 2, 2, 2]
    assert guard([1, 2, 2, 2], reached_cap=True) == [1, 2]
    with pytest.raises(ValueError, match="min_copies"):
        cut_loop([1, 1], min_copies=1)


TEXT = [400, 401, 402, 402, 402, 402]  # token ids of text (below Whisper's special tokens)


def _one_clip(speech_manifest):
    return read_manifest(speech_manifest)[:1]


def test_transformers_engine_cuts_only_outputs_of_the_capped_length(tiny_whisper_dir, speech_manifest, monkeypatch):
    # generate returns the new tokens without the end token, padded with it: a row that ended on its own has no
    # end token either when it is the batch's longest, so only its length tells it from one that hit the cap
    model, processor = load_asr_model(tiny_whisper_dir, "cpu")
    eos = model.generation_config.eos_token_id
    records = _one_clip(speech_manifest)
    decode = processor.tokenizer.decode

    def run(row, on, cap):
        monkeypatch.setattr(model, "generate", lambda x, **kw: torch.tensor([row]))
        return transcribe(model, records, processor=processor, progress=False, repetition_guard=on,
                          max_new_tokens=cap)[0]["hypothesis"]

    cut, whole = decode([400, 401, 402]).strip(), decode(TEXT).strip()
    assert run(TEXT, True, cap=len(TEXT)) == cut  # as many tokens as the cap: no end token came
    assert run(TEXT, False, cap=len(TEXT)) == whole != cut
    assert run(TEXT, True, cap=len(TEXT) + 1) == whole  # it ended one token before the cap
    assert run(TEXT + [eos], True, cap=len(TEXT) + 1) == whole  # padded (or, in older versions, ended)
    # the default cap is the generation config's max_length (14 for this model), as in CTranslate2
    loop = [400] + [402] * 13
    assert run(loop, True, cap=None) == decode([400, 402]).strip()
    assert run(loop[:13], True, cap=None) == decode(loop[:13]).strip()


def test_ctranslate2_engine_cuts_only_outputs_of_the_capped_length(tiny_whisper_dir, speech_manifest, tmp_path):
    pytest.importorskip("ctranslate2")
    from asr_analogy.speech.ct2_engine import Ct2Whisper

    model = Ct2Whisper(tiny_whisper_dir)  # exported on the fly
    audio = [torch.zeros(16000).numpy()]
    prompt = [model.generation_config.decoder_start_token_id]

    def run(seq, on, cap):
        model.runtime = SimpleNamespace(generate=lambda *a, **kw: [SimpleNamespace(sequences_ids=[list(seq)])])
        return model.decode(audio, prompt, 1, cap, repetition_guard=on)[0]

    cut = model.tokenizer.decode([400, 401, 402]).strip()
    whole = model.tokenizer.decode(TEXT).strip()
    assert run(TEXT, True, cap=len(TEXT)) == cut  # as many tokens as the cap: no end token came
    assert run(TEXT, False, cap=len(TEXT)) == whole
    assert run(TEXT, True, cap=len(TEXT) + 1) == whole  # it ended before the cap


def test_both_engines_guard_a_real_decoding_alike(tiny_whisper_dir, speech_manifest):
    # the random tiny Whisper runs every clip to its 14-token cap; a transcript ending in a loop is cut, others kept
    pytest.importorskip("ctranslate2")

    def hyps(**kw):
        return [r["hypothesis"] for r in transcribe(tiny_whisper_dir, speech_manifest, device="cpu", progress=False, **kw)]

    plain, guarded = hyps(), hyps(repetition_guard=True)
    assert guarded == hyps(repetition_guard=True, engine="ctranslate2")
    assert all(p.startswith(g) for p, g in zip(plain, guarded))


def test_the_cli_flag_turns_the_guard_on(tmp_path, speech_manifest, monkeypatch):
    from click.testing import CliRunner

    import asr_analogy.speech.transcribe as module
    from asr_analogy.cli import main

    seen = []
    monkeypatch.setattr(module, "transcribe", lambda *a, **kw: seen.append(kw["repetition_guard"]) or [])
    for flag in ([], ["--repetition-guard"]):
        (tmp_path / "model").mkdir(exist_ok=True)
        out = tmp_path / f"h{len(seen)}.jsonl"
        result = CliRunner().invoke(main, ["transcribe", str(tmp_path / "model"), str(speech_manifest), str(out), *flag])
        assert result.exit_code == 0, result.output
    assert seen == [False, True]
