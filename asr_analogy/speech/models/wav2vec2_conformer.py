"""Wav2Vec2-Conformer with a CTC head: character vocabulary, processor, CTC collator, tiny test configs.

CTC predicts one character per 20-ms frame; the vocabulary is ``[PAD]`` (id 0, also the CTC blank),
``[UNK]``, the word delimiter ``|`` (a space), then characters. ``build_char_vocab`` always includes the
letters a–z and the apostrophe, and adds any other character seen in the transcripts, sorted: two English
corpora therefore get the same vocabulary, which task vectors need (fine-tunes of one base must share the
CTC head's shape and meaning). To pin a vocabulary across runs, pass the same ``vocab.json`` (``vocab:`` in
the fine-tuning config).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from asr_analogy.errors import CheckpointError, ConfigError

PAD, UNK, DELIMITER = "[PAD]", "[UNK]", "|"
BASE_ALPHABET = "abcdefghijklmnopqrstuvwxyz'"
"""Characters every vocabulary built here contains."""


def ctc_text(text: str, upper: bool = False) -> str:
    """Normalize a transcript for a character CTC model.

    NFKC; lower case (upper with ``upper``); punctuation other than the apostrophe removed; whitespace runs
    become one space; leading/trailing space stripped. ``"Hello, World!"`` → ``"hello world"``.
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'")
    text = "".join(" " if unicodedata.category(c).startswith(("P", "S")) and c != "'" else c for c in text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.upper() if upper else text.lower()


def build_char_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Character vocabulary ``{token: id}`` for CTC: ``[PAD]``=0, ``[UNK]``=1, ``|``=2, then characters.

    The characters are ``BASE_ALPHABET`` plus every other character of the normalized ``texts`` (see
    ``ctc_text``), sorted by code point.
    """
    chars = set(BASE_ALPHABET)
    for text in texts:
        chars.update(ctc_text(text).replace(" ", ""))
    vocab = {PAD: 0, UNK: 1, DELIMITER: 2}
    for c in sorted(chars):
        vocab[c] = len(vocab)
    return vocab


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read a ``vocab.json`` (``{token: id}``) and check it has ``[PAD]``, ``[UNK]`` and ``|``."""
    path = Path(path)
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read vocabulary {path}: {exc}") from None
    missing = [t for t in (PAD, UNK, DELIMITER) if t not in vocab]
    if not isinstance(vocab, dict) or missing:
        raise ConfigError(f"vocabulary {path} lacks the tokens {missing}")
    return vocab


def make_processor(vocab: dict[str, int], sampling_rate: int = 16000):
    """A ``Wav2Vec2Processor`` (``Wav2Vec2CTCTokenizer`` over ``vocab`` + normalizing feature extractor)."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file), unk_token=UNK, pad_token=PAD, word_delimiter_token=DELIMITER, bos_token=None, eos_token=None
        )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def is_upper_vocab(tokenizer) -> bool:
    """True when the tokenizer's letters are upper case (e.g. facebook/wav2vec2-*-960h)."""
    letters = [t for t in tokenizer.get_vocab() if len(t) == 1 and t.isalpha()]
    return bool(letters) and all(t.isupper() for t in letters)


def ctc_vocab_size(tokenizer) -> int:
    """Rows the CTC head needs for ``tokenizer``: the largest token id + 1."""
    return max(tokenizer.get_vocab().values()) + 1


def tiny_wav2vec2_conformer_config(vocab_size: int = 32, hidden_size: int = 32, layers: int = 2, heads: int = 2):
    """A small random-init ``Wav2Vec2ConformerConfig`` for tests (20-ms frames like the full model)."""
    from transformers import Wav2Vec2ConformerConfig

    return Wav2Vec2ConformerConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        conv_depthwise_kernel_size=3,
        position_embeddings_type="rotary",
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        mask_time_prob=0.0,
        layerdrop=0.0,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        final_dropout=0.0,
        pad_token_id=0,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
    )


def load_wav2vec2_conformer(name_or_dir: str | os.PathLike, vocab: dict[str, int] | None):
    """Load ``(model, processor)`` for CTC fine-tuning.

    With ``vocab`` None, the processor saved with the model is used (an error if there is none). With a
    ``vocab``, a new processor is made and the CTC head is resized to it when the sizes differ (a new head
    is then randomly initialised; a pretrained-only checkpoint has no head and always gets a new one).
    """
    from transformers import Wav2Vec2ConformerForCTC, Wav2Vec2Processor

    name = str(name_or_dir)
    if vocab is None:
        try:
            processor = Wav2Vec2Processor.from_pretrained(name)
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{name} has no CTC processor (vocab.json); set `vocab` or use a manifest vocabulary: {exc}") from None
    else:
        processor = make_processor(vocab)
    tokenizer = processor.tokenizer
    try:
        model = Wav2Vec2ConformerForCTC.from_pretrained(
            name,
            vocab_size=ctc_vocab_size(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            ctc_loss_reduction="mean",
            ctc_zero_infinity=True,
            ignore_mismatched_sizes=True,
        )
    except OSError as exc:
        raise CheckpointError(f"cannot load Wav2Vec2-Conformer from {name}: {exc}") from None
    return model, processor


@dataclass
class CTCCollator:
    """Turns dataset rows (``audio`` float32 (samples,) at 16 kHz, ``text``) into a CTC training batch.

    Returns ``input_values`` (batch, samples) float32 normalized per utterance and zero-padded,
    ``attention_mask`` (batch, samples) int64, and ``labels`` (batch, characters) int64 padded with -100.
    Transcripts are normalized with ``ctc_text`` (upper case when the vocabulary is).
    """

    processor: Any

    def __post_init__(self):
        self.upper = is_upper_vocab(self.processor.tokenizer)

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        fe = self.processor.feature_extractor
        audio = [np.asarray(r["audio"], dtype=np.float32) for r in rows]
        batch = fe(audio, sampling_rate=fe.sampling_rate, padding=True, return_attention_mask=True, return_tensors="pt")
        ids = self.processor.tokenizer([ctc_text(r["text"], self.upper) for r in rows]).input_ids
        width = max(len(x) for x in ids)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, x in enumerate(ids):
            labels[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return {"input_values": batch.input_values, "attention_mask": batch.attention_mask, "labels": labels}
