"""Speech: model families and their import (``models/``), fine-tuning (``finetune_config``, ``train``),
transcription, WER/CER metrics, manifest datasets, and text-to-speech corpora (``tts/``).
"""
