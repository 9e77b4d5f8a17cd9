"""Pure functions on tensors and dict[str, Tensor]. No transformers, no config."""
