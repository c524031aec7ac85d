"""ONNX Runtime (CPU) backend: FP32 and QDQ ONNX models."""
