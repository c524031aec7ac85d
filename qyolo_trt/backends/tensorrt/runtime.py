"""CUDA for the TensorRT runner, through cuda-python (``cuda.bindings.runtime``): the GPU check,
pinned host + device buffers, one stream. Imports without a GPU; ``require_gpu`` says why there is none."""

from __future__ import annotations

import ctypes
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ...errors import DependencyError, QyoloError
from ...lazy import lazy_import
from .gpus import cc_from_version


INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver: the driver is older than the CUDA runtime cuda-python was built for


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device engines are built for / run on."""

    index: int
    name: str
    cc: str  # "sm89"


def load_cudart() -> ModuleType:
    """The cuda-python runtime module: ``cuda.bindings.runtime`` (cuda-python >= 12.6), else the older ``cuda.cudart``
    with the same API. Tests replace this function to inject a fake CUDA."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return lazy_import("cuda.cudart", "trt", "cuda-python (cuda.bindings.runtime)")


def _error_text(rt: ModuleType, err: Any) -> str:
    name = getattr(err, "name", str(err))
    msg = rt.cudaGetErrorString(err)[1]
    return f"{name}: {msg.decode() if isinstance(msg, bytes) else msg}"


def cuda_call(rt: ModuleType, result: tuple, what: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` result; a CUDA error becomes one QyoloError line."""
    err, *values = result
    if int(err) != 0:
        raise QyoloError(f"CUDA {what} failed ({_error_text(rt, err)})")
    return values[0] if len(values) == 1 else tuple(values)


def require_gpu(device: int = 0) -> GpuInfo:
    """The GPU at ``device``, or a one-line DependencyError (no driver, no device) -- before any TensorRT object."""
    rt = load_cudart()
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        why = _error_text(rt, err) if int(err) != 0 else "0 devices"
        hint = ""
        if int(err) == INSUFFICIENT_DRIVER:
            hint = "; cuda-python 13 needs an NVIDIA driver >= 580: with an older driver, pip install 'cuda-python>=12,<13'"
        raise DependencyError(f"no CUDA GPU available ({why}){hint}; TensorRT engines run only on an NVIDIA GPU with its driver")
    if device >= count:
        raise QyoloError(f"CUDA device {device} does not exist ({count} device(s))")
    props = cuda_call(rt, rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    cuda_call(rt, rt.cudaSetDevice(device), "cudaSetDevice")  # buffers, stream and engine then live on this GPU
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(device, name.rstrip("\x00").strip(), cc_from_version(props.major, props.minor))


class Buffer:
    """A pinned host array and its device twin, sized for the largest shape the engine allows."""

    def __init__(self, rt: ModuleType, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.rt, self.dtype = rt, np.dtype(dtype)
        self.capacity = int(np.prod(shape)) * self.dtype.itemsize
        self.host_ptr = cuda_call(rt, rt.cudaMallocHost(self.capacity), "cudaMallocHost")
        self.device = cuda_call(rt, rt.cudaMalloc(self.capacity), "cudaMalloc")
        raw = (ctypes.c_uint8 * self.capacity).from_address(int(self.host_ptr))
        self._flat = np.frombuffer(raw, dtype=self.dtype)

    def host(self, shape: tuple[int, ...]) -> np.ndarray:
        """A view of the pinned memory with ``shape`` (must fit the capacity)."""
        n = int(np.prod(shape))
        if n * self.dtype.itemsize > self.capacity:
            raise QyoloError(f"shape {shape} exceeds the engine's maximum ({self.capacity} bytes)")
        return self._flat[:n].reshape(shape)

    def free(self) -> None:
        self.rt.cudaFree(self.device)
        self.rt.cudaFreeHost(self.host_ptr)


class CudaStream:
    """One CUDA stream with async host<->device copies of ``Buffer``s."""

    def __init__(self, rt: ModuleType | None = None) -> None:
        self.rt = rt or load_cudart()
        self.stream = cuda_call(self.rt, self.rt.cudaStreamCreate(), "cudaStreamCreate")

    @property
    def handle(self) -> int:
        return int(self.stream)

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        return Buffer(self.rt, shape, dtype)

    def upload(self, buf: Buffer, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_call(self.rt, self.rt.cudaMemcpyAsync(buf.device, buf.host_ptr, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def download(self, buf: Buffer, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(self.rt, self.rt.cudaMemcpyAsync(buf.host_ptr, buf.device, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def synchronize(self) -> None:
        cuda_call(self.rt, self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def close(self) -> None:
        self.rt.cudaStreamDestroy(self.stream)
