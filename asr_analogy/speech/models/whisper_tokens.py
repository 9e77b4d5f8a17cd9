"""Whisper's special tokens, once: the English-only (``.en``) id table and the configs that name them.

``ENGLISH`` holds the ids of tiny.en's vocabulary (51864 tokens); ``WhisperTokens.from_vocabulary`` reads the same
tokens from any Whisper vocabulary (multilingual ones shift them by one). ``token_config`` gives the
``WhisperConfig`` keys and ``generation_config`` the ``GenerationConfig`` that every Whisper built or imported
here uses: the importer, the tiny test models and the tests all take their ids from this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from asr_analogy.errors import CheckpointError

ENGLISH_VOCAB_SIZE = 51864
"""Tokens of an English-only Whisper (tiny.en ... medium.en): BPE, specials, 1501 timestamps."""
MULTILINGUAL_VOCAB_SIZE = 51865
"""A vocabulary of this size or larger is multilingual (language tokens follow ``<|startoftranscript|>``)."""


@dataclass(frozen=True)
class WhisperTokens:
    """The special-token ids a Whisper config names."""

    endoftext: int  # <|endoftext|>: end of the text; also padding and the tokenizer's bos/unk
    startoftranscript: int  # <|startoftranscript|>: the decoder's first token
    notimestamps: int  # <|notimestamps|>: forced after the start (and language/task) tokens
    space: int  # "Ġ", a lone space: never the first generated token

    @classmethod
    def from_vocabulary(cls, vocabulary: list[str], where: str = "the vocabulary") -> WhisperTokens:
        """The ids of the special tokens in ``vocabulary`` (one token per id); ``CheckpointError`` if one is absent."""
        index = {t: i for i, t in enumerate(vocabulary)}
        ids = []
        for token in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "Ġ"):
            if token not in index:
                raise CheckpointError(f"{where} has no {token} token")
            ids.append(index[token])
        return cls(*ids)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> WhisperTokens:
        """The ids as a ``WhisperTokenizer`` (or the fast one) maps them."""
        ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "Ġ"])
        return cls(*ids)


ENGLISH = WhisperTokens(endoftext=50256, startoftranscript=50257, notimestamps=50362, space=220)
"""The ids in English-only Whisper's vocabulary (``ENGLISH_VOCAB_SIZE`` tokens)."""


def token_config(tokens: WhisperTokens = ENGLISH) -> dict[str, int]:
    """``WhisperConfig`` keys for the special tokens: pad and eos ``<|endoftext|>``, bos and decoder start
    ``<|startoftranscript|>``."""
    return dict(
        pad_token_id=tokens.endoftext,
        bos_token_id=tokens.startoftranscript,
        eos_token_id=tokens.endoftext,
        decoder_start_token_id=tokens.startoftranscript,
    )


def generation_config(
    tokens: WhisperTokens = ENGLISH,
    *,
    max_length: int = 448,
    suppress_tokens: list[int] | None = None,
    begin_suppress_tokens: list[int] | None = None,
    multilingual: bool = False,
    **extra,
):
    """``GenerationConfig`` that decodes text without timestamps: prompt ``<|startoftranscript|>`` (then the
    language and task tokens of a multilingual model) ``<|notimestamps|>``, stop at ``<|endoftext|>``.

    ``suppress_tokens`` defaults to none, ``begin_suppress_tokens`` to ``[space, <|endoftext|>]``; ``extra``
    keys (alignment heads, language table, ...) are passed on.
    """
    from transformers import GenerationConfig

    if begin_suppress_tokens is None:
        begin_suppress_tokens = [tokens.space, tokens.endoftext]
    return GenerationConfig(
        **token_config(tokens),
        no_timestamps_token_id=tokens.notimestamps,
        is_multilingual=multilingual,
        max_length=max_length,
        suppress_tokens=list(suppress_tokens or []),
        begin_suppress_tokens=list(begin_suppress_tokens),
        return_timestamps=False,
        **extra,
    )
