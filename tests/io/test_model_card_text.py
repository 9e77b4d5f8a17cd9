"""Model cards: the exact text a reader sees, the pipeline tag the Hub reads, and the caller's extra entries."""

from __future__ import annotations

import locale

import pytest
from huggingface_hub import ModelCard

from asr_analogy.io.model_card import cell, derived_card_text, is_hub_id, lineage, model_card, write_model_card


@pytest.fixture
def ascii_locale():
    """A process whose locale encoding is ASCII (the "C" locale of many containers and cluster jobs)."""
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    yield
    locale.setlocale(locale.LC_CTYPE, old)


def test_the_card_lists_every_base_and_tags_the_pipeline():
    card = model_card("m", relation="merge", bases=["org/a", "org/b"], how="Task arithmetic.")
    assert card.data.to_dict()["pipeline_tag"] == "automatic-speech-recognition"
    assert card.text == "\n# m\n\nTask arithmetic.\n\n## Made from\n\n- `org/a`\n- `org/b`\n"


def test_a_card_without_bases_has_no_base_model_and_no_license():
    data = model_card("scratch", relation="finetune", bases=[], how="x").data.to_dict()
    assert "base_model" not in data and "license" not in data


def test_a_card_is_written_in_utf8_whatever_the_locale(tmp_path, ascii_locale):
    card = model_card("m", relation="merge", bases=["org/a"], how="Task arithmetic, λ = 0.6.")
    path = write_model_card(tmp_path, card)
    assert "λ = 0.6" in path.read_bytes().decode("utf-8")


def test_cells_write_json_with_sorted_keys():
    assert cell({"b": 1, "a": [2, "x"]}) == '{"a": [2, "x"], "b": 1}'
    assert cell("a|b") == "a\\|b"


def test_a_base_model_given_as_one_string_is_one_ancestor(tmp_path):
    (tmp_path / "README.md").write_text("---\nbase_model: openai/whisper-tiny.en\nlicense: mit\n---\n\n# a\n")
    assert lineage(tmp_path) == (["openai/whisper-tiny.en"], "mit")


def test_is_hub_id_wants_owner_and_name():
    assert is_hub_id("openai/whisper-tiny.en")
    assert not is_hub_id("") and not is_hub_id(None) and not is_hub_id("whisper") and not is_hub_id("/abs/path")


def test_derived_card_puts_the_note_before_how_and_keeps_the_title():
    text = derived_card_text("merged-7", relation="merge", bases=["org/a"], how="Task arithmetic.",
                             extra={"note": "  From the store.  "})
    assert ModelCard(text).text == ("\n# merged-7\n\nFrom the store.\n\nTask arithmetic.\n\n## Made from\n\n"
                                    "- `org/a`\n")


@pytest.mark.parametrize("extra", [None, {}, {"note": None}, {"note": ""}])
def test_derived_card_without_a_note_is_the_plain_card(extra):
    text = derived_card_text("m", relation="merge", bases=["org/a"], how="Task arithmetic.", extra=extra)
    assert text == str(model_card("m", relation="merge", bases=["org/a"], how="Task arithmetic."))
    assert ModelCard(text).text.startswith("\n# m\n\nTask arithmetic.\n\n")


def test_derived_card_takes_a_wer_table_and_a_record():
    text = derived_card_text("m", relation="merge", bases=["org/a"], how="x",
                             extra={"wer": [{"test set": "ivr", "WER (%)": 12.5}], "record": {"lambda": 0.6}})
    card = ModelCard(text)
    assert card.data.to_dict()["asr_analogy"] == {"lambda": 0.6}
    assert card.text.endswith("## Word error rate\n\n| test set | WER (%) |\n|---|---|\n| ivr | 12.5 |\n")
    with pytest.raises(ValueError) as info:
        derived_card_text("m", relation="merge", bases=["org/a"], how="x", extra={"WER": [], "note": "n"})
    assert str(info.value) == "unknown model-card entries ['WER'] (known: note, wer, tags, record)"
