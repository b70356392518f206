"""Architectures of Restora's own bundled networks (torch only; no training code here).

The app normally runs these through their ONNX exports with onnxruntime; the torch modules
are the source of truth for training, export and tests.
"""
