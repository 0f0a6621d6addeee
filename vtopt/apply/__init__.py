"""Applying what was learned: optimize/evaluate over images, model files."""
