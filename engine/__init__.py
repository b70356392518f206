"""Restora's restoration engine. Never imports Qt; the GUI and the CLI both go through it."""

__version__ = "0.1.0"
