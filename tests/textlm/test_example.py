"""The text-arithmetic example end to end on a tiny Llama: fine-tunes, store, lambda on dev, sum, negation,
compact vectors, diagnostics and the perplexity table."""

import json

import pytest
import torch
from safetensors.torch import load_file

from asr_analogy.store import list_entries, verify
from asr_analogy.textlm.config import ExampleConfig
from asr_analogy.textlm.example import run_example
from tests.textlm.conftest import write_domains


def _weights(model_dir):
    return {k: v.double() for k, v in load_file(model_dir / "model.safetensors").items()}


@pytest.fixture(scope="module")
def example(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    folders = write_domains(root / "text")
    config = ExampleConfig.model_validate({
        "base": str(tiny_llama),
        "domains": {d: {"root": str(f), "patterns": ["*.txt"], "min_chars": 10} for d, f in folders.items()},
        "forget": "prose",
        "data": {"seed": 0, "dev": 0.25, "test": 0.25, "block_size": 16, "max_tokens_per_file": 64,
                 "train_blocks": 16, "dev_blocks": 2, "test_blocks": 4},
        "finetune": {"steps": 6, "learning_rate": 1e-2, "batch_size": 2, "seed": 0},
        "lambda": {"both": [0.5, 1.0], "forget": [0.5, 1.0], "keep_tolerance": 10.0},
        "compress": ["topk:0.5,int8"],
        "eval_batch_size": 4,
    })
    out = root / "out"
    results = run_example(config, out, progress=False, log=lambda _: None)
    return {"out": out, "results": results, "base": tiny_llama}


def test_the_sum_and_the_negation_are_the_arithmetic_of_the_stored_vectors(example):
    out, lam = example["out"], example["results"]["lambda"]
    base = _weights(example["base"])
    tau = {d: {k: v - base[k] for k, v in _weights(out / "models" / f"ft_{d}").items()} for d in ("code", "prose")}
    both, forget = _weights(out / "models" / "both"), _weights(out / "models" / "forget_prose")
    for name in base:
        expected = base[name] + lam["both"] * (tau["code"][name] + tau["prose"][name])
        torch.testing.assert_close(both[name], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(forget[name], base[name] - lam["forget"] * tau["prose"][name], atol=1e-6, rtol=0)
    assert max(float(t.abs().max()) for t in tau["prose"].values()) > 1e-3  # the vectors really move the model


def test_each_fine_tune_helps_its_own_domain_and_the_sum_differs_from_each(example):
    test = {name: {d: s["perplexity"] for d, s in by.items()} for name, by in example["results"]["test"].items()}
    assert test["ft_code"]["code"] < test["base"]["code"]
    assert test["ft_prose"]["prose"] < test["base"]["prose"]
    for single in ("ft_code", "ft_prose", "base"):
        assert test["both"] != pytest.approx(test[single], rel=1e-6)
    # negating the prose vector moves prose away from where its fine-tune took it
    assert test["forget_prose"]["prose"] > test["ft_prose"]["prose"]
    assert test["forget_prose"] != pytest.approx(test["base"], rel=1e-6)


def test_lambda_is_chosen_on_dev_scores_only(example):
    results = example["results"]
    lam = results["lambda"]
    dev_both = lam["dev_both"]
    mean_nll = {k: sum(s["nll_per_token"] for s in v.values()) for k, v in dev_both.items()}
    assert f"{lam['both']:g}" == min(mean_nll, key=mean_nll.get)
    # keep_tolerance 10 admits every lambda: the one with the highest prose dev perplexity wins
    dev_forget = lam["dev_forget"]
    assert f"{lam['forget']:g}" == max(dev_forget, key=lambda k: dev_forget[k]["prose"]["perplexity"])
    scores = json.loads((example["out"] / "scores.json").read_text())
    assert all(key.endswith("/dev") for name, by in scores.items() if name.startswith("dev:") for key in by)


def test_store_holds_verified_full_and_compact_vectors_and_the_table_is_written(example):
    out, results = example["out"], example["results"]
    store = out / "store"
    assert [e["name"] for e in list_entries(store)] == ["code", "code.topk0.5-int8", "prose", "prose.topk0.5-int8"]
    assert all(problems == [] for problems in verify(store=store).values())
    assert 0 < results["compressed_share"]["topk:0.5,int8"]["code"] < 1
    assert set(results["test"]) == {"base", "ft_code", "ft_prose", "both", "forget_prose", "both.topk0.5-int8",
                                    "forget_prose.topk0.5-int8"}
    assert results["test"]["both.topk0.5-int8"] != results["test"]["both"]
    assert -1 <= results["diagnostics"]["cosine"] <= 1
    assert (out / "diagnostics" / "diagnostics.json").is_file() and (out / "diagnostics" / "cosine.png").is_file()
    table = (out / "results.md").read_text()
    assert f"| base - {results['lambda']['forget']:g} tau_prose | " in table
    assert "vectors compressed topk0.5-int8" in table
    assert len(table.strip().splitlines()) == 2 + 7


def test_a_second_run_reuses_every_stage(example, monkeypatch):
    import asr_analogy.textlm.example as ex

    def refuse(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(ex, "finetune_lm", refuse)
    monkeypatch.setattr(ex, "perplexity", refuse)
    config = ExampleConfig.model_validate(json.loads((example["out"] / "config.json").read_text()))
    again = run_example(config, example["out"], progress=False, log=lambda _: None)
    assert again["test"] == example["results"]["test"]
