"""Exceptions raised for bad input. The CLI prints their message and exits non-zero."""


class AsrAnalogyError(Exception):
    """Base class: a user-facing error whose message says what is wrong and where."""


class CheckpointError(AsrAnalogyError):
    """A checkpoint is missing, truncated, or does not match the others."""


class MergeError(AsrAnalogyError):
    """Inputs to a merge are incompatible (tensor sets, shapes, dtypes, base fingerprint, NaN/Inf)."""


class ConfigError(AsrAnalogyError):
    """A YAML config is malformed: unknown key, wrong type, missing field. Names the key and the file."""


class AudioError(AsrAnalogyError):
    """An audio file is unreadable, empty, or otherwise unusable."""


class ManifestError(AsrAnalogyError):
    """A JSONL manifest line is malformed or lacks a required field."""


class OutputExistsError(AsrAnalogyError):
    """The output already exists and overwriting was not asked for (--force)."""
