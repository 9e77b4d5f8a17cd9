"""Synthetic-to-real task analogy: vectors, lambda selection, ensembles."""
