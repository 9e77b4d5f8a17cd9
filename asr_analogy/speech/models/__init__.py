"""Model families: Whisper (``whisper``; its English-only and multilingual special tokens in ``whisper_tokens``),
Wav2Vec2-Conformer CTC (``wav2vec2_conformer``), the CTranslate2 Whisper import (``ct2_import`` over
``ct2_format``, ``ct2_weights``, ``ct2_processor``) with the bundled models tiny.en and base, and the export back
to CTranslate2 for deployment (``ct2_export``).
"""
