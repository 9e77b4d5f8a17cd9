"""Corpus preparers: one module per corpus, each with ``prepare(...)`` returning manifest paths."""
