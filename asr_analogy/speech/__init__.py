"""Speech: model families and their import (``models/``), fine-tuning (``finetune_config``, ``train``),
transcription, WER/CER metrics, manifest datasets, text-to-speech corpora (``tts/``), and real-recording
conditions for real speech (``degrade``: hold music, babble, GSM).
"""
