"""Every model the merge core writes carries a model card (README.md) written with the model, atomically."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from asr_analogy.io.model_card import model_card, write_model_card
from asr_analogy.merge import apply_vector, merge, vector


@pytest.fixture
def carded(models):
    """The toy base with a card of its own: a fine-tune of a Hub model under the MIT license."""
    write_model_card(models["base"], model_card("base", relation="finetune", bases=["org/whisper-toy"], how="x"))
    path = models["base"] / "README.md"
    path.write_text(path.read_text().replace("library_name:", "license: mit\nlibrary_name:"))
    return models


def test_a_merged_model_gets_a_card_with_its_config_and_inherited_fields(carded, tmp_path):
    config = {"merge_method": "task_arithmetic", "base_model": str(carded["base"]),
              "models": [{"model": str(carded["a"])}, {"model": str(carded["b"])}], "parameters": {"lambda": 0.5}}
    out = merge(config, tmp_path / "merged", progress=False, card={"wer": [{"test set": "toy", "WER (%)": 3.0}]})
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == ["org/whisper-toy"] and data["base_model_relation"] == "merge"
    assert data["license"] == "mit" and data["library_name"] == "transformers"
    assert "```yaml\n" + (out / "merge_config.yaml").read_text().rstrip() + "\n```" in card.text
    made_from = card.text.split("## Made from\n\n")[1].split("\n\n")[0].splitlines()
    assert made_from == [f"- `{carded[k]}`" for k in ("base", "a", "b")]
    assert "| toy | 3.0 |" in card.text
    assert not list(tmp_path.glob(".merged*"))  # written inside the temporary directory, renamed with it


def test_apply_vector_writes_a_card_and_a_vector_output_gets_none(carded, tmp_path):
    tau = vector(carded["a"], carded["base"], tmp_path / "tau.safetensors", progress=False)
    out = apply_vector(carded["base"], tau, tmp_path / "applied", scale=0.25, progress=False,
                       card={"note": "An IVR adaptation.", "tags": ["syn2real"]})
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == ["org/whisper-toy"] and card.data.base_model_relation == "merge"
    assert card.data.tags == ["asr-analogy", "automatic-speech-recognition", "merge", "syn2real"]
    assert card.text.startswith(f"\n# applied\n\nAn IVR adaptation.\n\nThe base plus 0.25 × the task vector `{tau}`")
    # A merge of task vectors only is itself a task vector: no model card.
    combined = merge({"merge_method": "task_arithmetic", "models": [{"vector": str(tau)}]}, tmp_path / "sum",
                     progress=False)
    assert not (combined / "README.md").exists()
