"""Merge methods (registry of presets over one kernel), validated YAML config, streaming engine."""
