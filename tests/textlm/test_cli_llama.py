"""The CLI verbs on a text LM's model folder (a Llama with its tokenizer, tied or untied embeddings): the
outputs load with ``from_pretrained`` and hold the arithmetic."""

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from asr_analogy.cli import main
from tests.textlm.conftest import save_tiny_llama


def _cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _weights(model_dir):
    return {k: v.double() for k, v in load_file(model_dir / "model.safetensors").items()}


@pytest.fixture(params=[False, True], ids=["untied", "tied"])
def llamas(request, tmp_path):
    """base and a fine-tune (every weight moved by seeded noise of std 0.01); tied: embeddings shared with the
    output layer, stored once as save_pretrained does (SmolLM2's layout)."""
    from transformers import AutoModelForCausalLM

    base = save_tiny_llama(tmp_path / "base")
    if request.param:
        model = AutoModelForCausalLM.from_pretrained(base)
        model.config.tie_word_embeddings = True
        model.tie_weights()
        model.save_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(tmp_path / "ft")
    return base, tmp_path / "ft", request.param


def test_vector_apply_store_and_merge_on_a_llama_folder(llamas, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, ft, tied = llamas
    assert ("lm_head.weight" in _weights(base)) is not tied
    vec = tmp_path / "tau.safetensors"
    _cli("vector", ft, base, vec, "--quiet")
    tau = load_file(vec)
    _cli("apply-vector", base, vec, tmp_path / "neg", "--scale", "-0.5", "--quiet")
    store = tmp_path / "store"
    _cli("store", "add", "domain", vec, "--store", store, "--meta", "base_name=tiny-llama")
    assert "LlamaForCausalLM" in _cli("store", "show", "domain", "--store", store)
    _cli("store", "equip", base, "domain:2", tmp_path / "equipped", "--lambda", "0.5", "--store", store, "--quiet")
    config = tmp_path / "merge.yaml"
    config.write_text(f"merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n"
                      f"  - model: {ft}\n    parameters: {{weight: 0.25}}\n")
    _cli("merge", config, tmp_path / "merged", "--quiet")

    b = _weights(base)
    for out, scale in (("neg", -0.5), ("equipped", 1.0), ("merged", 0.25)):
        got = _weights(tmp_path / out)
        assert set(got) == set(b)  # a tied model stays tied: no lm_head.weight appears
        for name in b:
            torch.testing.assert_close(got[name], b[name] + scale * tau[name].double(), atol=1e-6, rtol=0)
        model = AutoModelForCausalLM.from_pretrained(tmp_path / out)
        assert model.config.tie_word_embeddings is tied
        tokenizer = AutoTokenizer.from_pretrained(tmp_path / out)  # the tokenizer files came along
        ids = tokenizer("def add(x):", return_tensors="pt")["input_ids"]
        assert torch.isfinite(model(input_ids=ids).logits).all()
