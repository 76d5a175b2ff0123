"""Runtimes behind one Runner interface: torch, ONNX Runtime, TensorRT."""
