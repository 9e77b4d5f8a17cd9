"""A tiny randomly initialised Llama (2 layers, hidden 64, ~115k parameters) with a byte-level BPE tokenizer of
~300 tokens trained in the test, and two text domains (Python-like code, English-like prose) as files."""

import pytest
import torch

CODE = "def add_{i}(x, y):\n    return x + y * {i}\n\nfor k in range({i}):\n    print(add_{i}(k, {j}))\n"
PROSE = ("The {w} river runs past the old mill, and in spring the water is high. People walk along "
         "the bank in the evening to watch the {w} birds come home.\n")
WORDS = ["quiet", "green", "wide", "cold", "slow", "bright", "long", "deep", "small", "grey", "warm", "dark"]


def domain_texts():
    """{domain: [text of each file]}: 12 files per domain, each a few hundred characters."""
    code = ["".join(CODE.format(i=i + k, j=k) for k in range(6)) for i in range(12)]
    prose = ["".join(PROSE.format(w=WORDS[(i + k) % len(WORDS)]) for k in range(4)) for i in range(12)]
    return {"code": code, "prose": prose}


def write_domains(root):
    """The texts as files ``root/<domain>/f<NN>.txt``; returns {domain: folder}."""
    folders = {}
    for domain, texts in domain_texts().items():
        folder = root / domain
        folder.mkdir(parents=True)
        for i, text in enumerate(texts):
            (folder / f"f{i:02d}.txt").write_text(text, encoding="utf-8")
        folders[domain] = folder
    return folders


def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on the two domains (vocabulary of at most 300, ``<eos>`` = 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<eos>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([t for texts in domain_texts().values() for t in texts], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")


def save_tiny_llama(path, *, zero: bool = False, seed: int = 0):
    """A 2-layer Llama (hidden 64, vocabulary 320) with the tiny tokenizer, saved with ``save_pretrained``;
    ``zero``: every weight 0 (the model then gives every token the same probability)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=320, tie_word_embeddings=False, eos_token_id=1,
                      bos_token_id=None, pad_token_id=1)
    model = LlamaForCausalLM(cfg)
    if zero:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """The seeded tiny Llama's folder (shared by the tests: never write into it)."""
    return save_tiny_llama(tmp_path_factory.mktemp("llama") / "base")
