"""Speech models: import, fine-tuning, transcription, metrics, TTS."""
