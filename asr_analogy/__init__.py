"""asr_analogy: adapt speech recognizers to new domains by task-vector arithmetic.

Layers, imports pointing one way: io (files) -> ops (tensor maths) -> merge (plan, stream, kernels, task vectors)
-> speech (models, training, transcription, TTS) and store (task vectors kept and equipped) -> analogy (the syn2real
recipe) -> cli; ``data_prep`` (corpora) sits beside speech; ``errors`` holds the user-facing exceptions.
"""

__version__ = "0.1.0"
