"""Model merging: validated mergekit-compatible YAML (config), a plan per output tensor (plan), streamed
reading and writing (stream), one kernel per kind of method, each declaring its parameters (kernels,
methods, params), and task vectors on disk (task_vector)."""

from asr_analogy.merge.api import analogy_merge, merge
from asr_analogy.merge.config import MergeConfig, load_merge_config, parse_merge_config
from asr_analogy.merge.methods import METHODS
from asr_analogy.merge.stream import tune_malloc
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
    "tune_malloc",
    "vector",
]
