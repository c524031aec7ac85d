"""OpenVINO (CPU) backend: FP32 and QDQ ONNX models, f32 forced or OpenVINO's default precision."""
