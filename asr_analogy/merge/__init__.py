"""Merge methods (presets of one generalized task-arithmetic kernel, plus linear and SLERP), validated
mergekit-compatible YAML, a streaming engine, task vectors and the syn2real analogy."""

from asr_analogy.merge.api import analogy_merge, merge
from asr_analogy.merge.config import MergeConfig, load_merge_config, parse_merge_config
from asr_analogy.merge.methods import METHODS
from asr_analogy.merge.task_vector import TaskVector, apply_vector, read_vector_metadata, vector

__all__ = [
    "METHODS",
    "MergeConfig",
    "TaskVector",
    "analogy_merge",
    "apply_vector",
    "load_merge_config",
    "merge",
    "parse_merge_config",
    "read_vector_metadata",
    "vector",
]
