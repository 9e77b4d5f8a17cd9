"""Text-to-speech backends behind one interface."""
