"""A fake ``cuda.bindings.runtime``: same call shapes ((err, value) tuples; ``(err, None)`` on failure, as cuda-python
12.9 / 13 return), a current device that only ``cudaSetDevice`` changes, device memory in host RAM."""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass


class cudaError_t(enum.IntEnum):  # noqa: N801 - cuda-python's names
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInsufficientDriver = 35
    cudaErrorInvalidDevice = 101
    cudaErrorNoDevice = 100


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


@dataclass
class cudaDeviceProp:  # noqa: N801
    name: bytes
    major: int
    minor: int


class cudaStream_t:  # noqa: N801
    _next = 0x7000

    def __init__(self) -> None:
        cudaStream_t._next += 16
        self._ptr = cudaStream_t._next

    def __int__(self) -> int:
        return self._ptr


_MESSAGES = {
    cudaError_t.cudaSuccess: b"no error",
    cudaError_t.cudaErrorInsufficientDriver: b"CUDA driver version is insufficient for CUDA runtime version",
    cudaError_t.cudaErrorNoDevice: b"no CUDA-capable device is detected",
}


class FakeCudart:
    """``FakeCudart(devices=[(name, major, minor)])``; ``FakeCudart(error=cudaErrorInsufficientDriver)`` has no GPU."""

    cudaError_t = cudaError_t
    cudaMemcpyKind = cudaMemcpyKind

    def __init__(self, devices: list[tuple[str, int, int]] | None = None, error: cudaError_t = cudaError_t.cudaSuccess) -> None:
        self.devices = [] if devices is None else devices
        self.error = error
        self.memory: dict[int, ctypes.Array] = {}  # live allocations: address -> buffer
        self.streams: set[int] = set()
        self.copies: list[tuple[int, int]] = []  # (kind, bytes), in order
        self.current = 0  # the current device (CUDA's default), changed only by cudaSetDevice
        self.placement: dict[int, int] = {}  # address -> device it was allocated on

    def cudaGetErrorString(self, err: cudaError_t) -> tuple[cudaError_t, bytes]:
        return cudaError_t.cudaSuccess, _MESSAGES.get(err, b"unknown error")

    def cudaGetDeviceCount(self) -> tuple[cudaError_t, int | None]:
        return (self.error, None) if self.error else (cudaError_t.cudaSuccess, len(self.devices))

    def cudaGetDeviceProperties(self, device: int) -> tuple[cudaError_t, cudaDeviceProp | None]:
        if device >= len(self.devices):
            return cudaError_t.cudaErrorInvalidValue, None
        name, major, minor = self.devices[device]
        return cudaError_t.cudaSuccess, cudaDeviceProp(name.encode() + b"\x00" * 4, major, minor)

    def cudaSetDevice(self, device: int) -> tuple[cudaError_t]:
        if not 0 <= device < len(self.devices):
            return (cudaError_t.cudaErrorInvalidDevice,)
        self.current = device
        return (cudaError_t.cudaSuccess,)

    def _alloc(self, nbytes: int) -> tuple[cudaError_t, int | None]:
        if not self.devices:
            return cudaError_t.cudaErrorNoDevice, None
        buf = (ctypes.c_uint8 * max(nbytes, 1))()
        self.memory[ctypes.addressof(buf)] = buf
        self.placement[ctypes.addressof(buf)] = self.current
        return cudaError_t.cudaSuccess, ctypes.addressof(buf)

    cudaMalloc = _alloc
    cudaMallocHost = _alloc

    def _free(self, ptr: int) -> tuple[cudaError_t]:
        return (cudaError_t.cudaSuccess,) if self.memory.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)

    cudaFree = _free
    cudaFreeHost = _free

    def cudaStreamCreate(self) -> tuple[cudaError_t, cudaStream_t]:
        stream = cudaStream_t()
        self.streams.add(int(stream))
        return cudaError_t.cudaSuccess, stream

    def cudaStreamDestroy(self, stream: cudaStream_t) -> tuple[cudaError_t]:
        self.streams.discard(int(stream))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, stream: cudaStream_t) -> tuple[cudaError_t]:
        return (cudaError_t.cudaSuccess if int(stream) in self.streams else cudaError_t.cudaErrorInvalidValue,)

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: cudaStream_t) -> tuple[cudaError_t]:
        if int(stream) not in self.streams:
            return (cudaError_t.cudaErrorInvalidValue,)
        ctypes.memmove(int(dst), int(src), count)
        self.copies.append((int(kind), count))
        return (cudaError_t.cudaSuccess,)
