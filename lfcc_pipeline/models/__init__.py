"""Model registry, timm factory, feature taps, weights I/O and ONNX export."""
