"""Input/output: checkpoints, manifests, audio, atomic writes. Imports nothing else from the package."""
