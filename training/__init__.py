"""Reproducible training, export and evaluation of Restora's bundled models (not imported by the app)."""
