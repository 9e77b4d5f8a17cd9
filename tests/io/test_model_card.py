"""Model cards: the front matter the Hub reads, inherited from a local base's own card, and the WER table."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from asr_analogy.io.model_card import derived_card_text, lineage, model_card, table, write_model_card


def test_a_finetune_of_a_hub_model_names_it_and_parses_back(tmp_path):
    card = model_card("ft", relation="finetune", bases=["openai/whisper-tiny.en"], how="Fine-tuned for 5 steps.",
                      wer=[{"test set": "dev", "WER (%)": 12.5}], record={"steps": 5})
    path = write_model_card(tmp_path, card)
    back = ModelCard.load(path)
    data = back.data.to_dict()
    assert data["base_model"] == ["openai/whisper-tiny.en"] and data["base_model_relation"] == "finetune"
    assert data["library_name"] == "transformers" and "license" not in data  # unknown: left out
    assert data["tags"] == ["asr-analogy", "automatic-speech-recognition", "finetune"]
    assert data["asr_analogy"] == {"steps": 5}
    assert back.text.startswith("\n# ft\n\nFine-tuned for 5 steps.\n\n## Made from\n\n- `openai/whisper-tiny.en`\n")
    assert "## Word error rate\n\n| test set | WER (%) |\n|---|---|\n| dev | 12.5 |\n" in back.text


def test_a_merge_of_local_models_inherits_hub_ancestors_and_the_first_license(tmp_path):
    a, b, plain = tmp_path / "a", tmp_path / "b", tmp_path / "plain"
    for d in (a, b, plain):
        d.mkdir()
    write_model_card(a, model_card("a", relation="finetune", bases=["openai/whisper-tiny.en"], how="x"))
    text = (a / "README.md").read_text().replace("library_name:", "license: mit\nlibrary_name:")
    (a / "README.md").write_text(text)
    write_model_card(b, model_card("b", relation="finetune", bases=["openai/whisper-base"], how="y"))
    (plain / "README.md").write_text("# no front matter\n")
    assert lineage(a) == (["openai/whisper-tiny.en"], "mit")
    assert lineage(plain) == ([], None)
    assert lineage("org/model") == (["org/model"], None)
    assert lineage("no-such-dir") == ([], None)

    data = ModelCard(derived_card_text("m", relation="merge", bases=[a, b, plain, a], how="Task arithmetic.",
                                       extra={"note": "From the store.", "tags": ["task-vector"]})).data.to_dict()
    assert data["base_model"] == ["openai/whisper-tiny.en", "openai/whisper-base"]
    assert data["base_model_relation"] == "merge" and data["license"] == "mit"
    assert data["tags"] == ["asr-analogy", "automatic-speech-recognition", "merge", "task-vector"]
    with pytest.raises(ValueError, match="unknown model-card entries"):
        derived_card_text("m", relation="merge", bases=[a], how="x", extra={"wers": []})
    with pytest.raises(ValueError, match="relation 'copy'"):
        model_card("m", relation="copy", bases=[a], how="x")


def test_table_takes_columns_in_first_seen_order_and_escapes_bars():
    assert table([{"a": 1, "b": "x|y"}, {"c": [1, 2], "a": 2}]) == (
        "| a | b | c |\n|---|---|---|\n| 1 | x\\|y |  |\n| 2 |  | [1, 2] |"
    )
    assert table([]) == ""
