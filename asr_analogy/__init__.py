"""asr_analogy: adapt speech recognizers to new domains by task-vector arithmetic.

Layers, imports pointing one way: io (files) -> ops (tensor maths) -> merge (methods, engine) -> speech (models,
training, transcription, TTS) -> analogy (the syn2real recipe) -> cli; ``errors`` holds the user-facing exceptions.
"""

__version__ = "0.1.0"
