"""Input/output, the bottom layer: checkpoints (``checkpoint/``: safetensors format, lazy reader, atomic sharded
writer, Hugging Face directories), JSONL manifests and the skip report, audio, atomic writes, the strict YAML
loader and Hugging Face model cards (``model_card``). Imports nothing from the package but ``asr_analogy.errors``."""
