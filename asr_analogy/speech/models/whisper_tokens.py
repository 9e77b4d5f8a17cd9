"""Whisper's special tokens, once: the English-only and multilingual id tables and the configs that name them.

``ENGLISH`` holds the ids of tiny.en's vocabulary (51864 tokens), ``MULTILINGUAL`` those of the multilingual
vocabulary (51865 tokens: one more BPE token, so every special token moves up by one). ``WhisperTokens.from_vocabulary``
reads them from any Whisper vocabulary, ``language_ids`` and ``task_ids`` read the language and task tokens, and
``forced_prefix`` is the prompt generation forces (``<|startoftranscript|>`` [``<|en|><|transcribe|>``]
``<|notimestamps|>``). ``token_config`` gives the ``WhisperConfig`` keys and ``generation_config`` the
``GenerationConfig`` that every Whisper built or imported here uses: the importer, the tiny test models and the
tests all take their ids from this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from asr_analogy.errors import CheckpointError, ConfigError

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
MULTILINGUAL = WhisperTokens(endoftext=50257, startoftranscript=50258, notimestamps=50363, space=220)
"""The ids in multilingual Whisper's vocabulary (``MULTILINGUAL_VOCAB_SIZE`` tokens: tiny ... large-v2)."""

TASKS = ("transcribe", "translate")
"""Whisper's task tokens ``<|transcribe|>`` and ``<|translate|>``."""


def language_ids(vocabulary: list[str]) -> dict[str, int]:
    """``{"<|en|>": id, ...}``: the language tokens of a Whisper vocabulary, in vocabulary order.

    They are the ``<|xx|>`` tokens between ``<|startoftranscript|>`` and ``<|translate|>`` (99 in Whisper up to
    large-v2, 50259 ... 50357 for ``<|en|>`` ... ``<|su|>`` in the multilingual vocabulary). An English-only
    vocabulary lists them too, but its models were never trained on them.
    """
    index = {t: i for i, t in enumerate(vocabulary)}
    start, end = index.get("<|startoftranscript|>"), index.get("<|translate|>")
    if start is None or end is None or end <= start:
        return {}
    between = enumerate(vocabulary[start + 1 : end], start=start + 1)
    return {t: i for i, t in between if t.startswith("<|") and t.endswith("|>")}


def task_ids(vocabulary: list[str]) -> dict[str, int]:
    """``{"transcribe": id, "translate": id}`` for the task tokens present in ``vocabulary``."""
    index = {t: i for i, t in enumerate(vocabulary)}
    return {task: index[f"<|{task}|>"] for task in TASKS if f"<|{task}|>" in index}


def forced_prefix(gen, language: str | None = None, task: str | None = None) -> list[int]:
    """The token ids ``generate`` forces before the text, read from a ``GenerationConfig`` ``gen``.

    English-only (``gen.is_multilingual`` false): ``[<|startoftranscript|>, <|notimestamps|>]``; ``language``
    and ``task`` must be unset (or English / transcribe). Multilingual: ``[<|startoftranscript|>, <|xx|>,
    <|task|>, <|notimestamps|>]`` with ``language`` a code (``en``) or token (``<|en|>``) from ``gen.lang_to_id``
    (default ``en``) and ``task`` from ``gen.task_to_id`` (default ``transcribe``). ``ConfigError`` otherwise.
    """

    start, notimestamps = gen.decoder_start_token_id, gen.no_timestamps_token_id
    if not getattr(gen, "is_multilingual", False):
        if language_token(language or "en") != "<|en|>" or (task or "transcribe") != "transcribe":
            raise ConfigError(
                f"the model is English-only: it cannot take language {language!r} or task {task!r}"
            )
        return [start, notimestamps]
    lang_to_id, task_to_id = getattr(gen, "lang_to_id", None) or {}, getattr(gen, "task_to_id", None) or {}
    token = language_token(language or "en")
    if token not in lang_to_id:
        raise ConfigError(f"language {language!r} is not one of the model's {len(lang_to_id)} languages")
    task = task or "transcribe"
    if task not in task_to_id:
        raise ConfigError(f"task {task!r} is not one of the model's tasks {sorted(task_to_id)}")
    return [start, lang_to_id[token], task_to_id[task], notimestamps]


def language_token(language: str) -> str:
    """``"en"``, ``"english"`` or ``"<|en|>"`` → ``"<|en|>"`` (names as transformers' Whisper tokenizer has them)."""
    if language.startswith("<|") and language.endswith("|>"):
        return language
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    code = TO_LANGUAGE_CODE.get(language.lower(), language.lower())
    return f"<|{code}|>"


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
