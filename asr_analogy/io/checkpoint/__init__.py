"""Checkpoints: the safetensors format (``format``), a lazy reader (``reader``), an atomic streaming sharded
writer (``writer``) and Hugging Face directory helpers (``hf_dir``). Import the public names from here."""

from asr_analogy.io.checkpoint.format import (
    ST_TO_TORCH,
    TORCH_TO_ST,
    SafetensorsHeader,
    StoredTensor,
    TensorSpec,
    dtype_name,
    natural_key,
    read_safetensors_header,
)
from asr_analogy.io.checkpoint.hf_dir import MODEL_SIDE_FILES, copy_model_files, save_checkpoint, set_config_dtype
from asr_analogy.io.checkpoint.reader import (
    FINGERPRINT_SCHEME,
    CheckpointReader,
    fingerprint_mismatch,
    load_state_dict,
)
from asr_analogy.io.checkpoint.writer import ShardedWriter, parse_size, plan_shards, write_safetensors_file

__all__ = [
    "FINGERPRINT_SCHEME",
    "MODEL_SIDE_FILES",
    "ST_TO_TORCH",
    "TORCH_TO_ST",
    "CheckpointReader",
    "SafetensorsHeader",
    "ShardedWriter",
    "StoredTensor",
    "TensorSpec",
    "copy_model_files",
    "dtype_name",
    "fingerprint_mismatch",
    "load_state_dict",
    "natural_key",
    "parse_size",
    "plan_shards",
    "read_safetensors_header",
    "save_checkpoint",
    "set_config_dtype",
    "write_safetensors_file",
]
