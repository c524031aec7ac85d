"""Test doubles for the TensorRT Python API (10.x and 11.x) and cuda-python's runtime module.

They implement exactly the API subset qyolo-trt uses, with the version differences of the real libraries:
TensorRT 11 has no BuilderFlag.INT8/FP16, no calibrators and no dynamic ranges (strong typing only), and its
inspector JSON lists "I/O Tensors" instead of "Bindings". Objects use ``__slots__``, so touching an attribute
a version does not have fails like the real bindings do. Engines "run" by executing the embedded ONNX model
with ONNX Runtime on the (host-memory) fake device buffers.
"""

from .fake_cuda import FakeCudart
from .fake_trt import make_trt

__all__ = ["FakeCudart", "make_trt"]
