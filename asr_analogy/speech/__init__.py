"""Speech: model families, their CTranslate2 import and export (``models/``), fine-tuning (``finetune_config``,
``train``), resumable transcription with the transformers or CTranslate2 engine (``transcribe``, ``ct2_engine``,
``transcript_file``), WER/CER metrics, manifest datasets, text-to-speech corpora (``tts/``), and real-recording
conditions for real speech (``degrade``: hold music, babble, GSM).
"""
