"""Neural runtime: device choice, tiled inference, torch and ONNX Runtime backends."""
