"""Model families: Whisper, Wav2Vec2-Conformer, CTranslate2 import."""
