"""Test doubles for the TensorRT Python API (10.x and 11.x) and cuda-python's runtime module.

They implement exactly the API subset qyolo-trt uses, with the version differences of the real libraries:
TensorRT 11 has no BuilderFlag.INT8/FP16, no calibrators and no dynamic ranges (strong typing only), and its
inspector JSON lists "I/O Tensors" instead of "Bindings". Objects use ``__slots__``, so touching an attribute
a version does not have fails like the real bindings do. Engines "run" by executing the embedded ONNX model
with ONNX Runtime on the (host-memory) fake device buffers.
"""

from .fake_cuda import FakeCudart
from .fake_trt import make_trt

__all__ = ["FakeCudart", "install_doubles", "make_trt"]


def install_doubles(monkeypatch, major: int = 10, devices=(("NVIDIA H100 80GB HBM3", 9, 0),), **trt_kwargs):
    """Make ``import tensorrt`` return a fake of ``major`` and cuda-python a FakeCudart with ``devices``."""
    import sys

    from qyolo_trt.backends.tensorrt import runtime

    cudart = FakeCudart(list(devices)) if devices else FakeCudart(error=FakeCudart.cudaError_t.cudaErrorInsufficientDriver)
    trt = make_trt(major, cudart=cudart, **trt_kwargs)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(runtime, "load_cudart", lambda: cudart)
    return trt, cudart
