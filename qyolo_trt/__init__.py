"""qyolo-trt: FP32 YOLO -> accurate INT8 TensorRT engines (Q-YOLO UH calibration, TensorRT-aware QDQ)."""

__version__ = "0.1.0"
