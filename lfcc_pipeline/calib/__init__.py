"""Calibration and reduced precision: the calibration set, INT8 Q/DQ models and FP16 models.

- calibset.py: draw a class-stratified calibration set, save/load calib.npz, turn it into model inputs.
- graph.py:    small ONNX graph helpers shared by the producers (tidy, metadata, opsets, float ranges).
- qdq.py:      INT8 explicit quantization: the TensorRT flavour (symmetric, per-channel weights; NVIDIA
               ModelOpt where installed, else ONNX Runtime's quantizer) and the ONNX Runtime CPU flavour.
- fp16.py:     FP16 models with numerically sensitive ops kept in FP32 and FP32 inputs/outputs.
- checks.py:   what TensorRT needs from those graphs, checked on the files (used by the stage and tests).
- qdq_fp16.py: the FP16-outside-Q/DQ form of the TensorRT flavour, for strongly typed TensorRT.
- layers.py:   quantizable layers, their PyTorch module names, keeping layers in float (graph surgery).
- sensitivity.py (+ sensitivity_plot.py): per-layer INT8 sensitivity on held-out images.
- mixed.py:    mixed precision under a top-1 budget; tuning.py: both for one model's flavours.
"""
