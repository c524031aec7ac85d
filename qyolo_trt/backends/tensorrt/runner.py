"""``TrtRunner``: run a built engine (TensorRT 10/11 or TensorRT-RTX) with cuda-python, checked against its sidecar.

Order in ``activate``: sidecar -> GPU present (cuda-python) -> backend version + GPU match the sidecar ->
only then a TensorRT runtime, the engine, the context, pinned host + device buffers and one stream.
``infer``: ``set_input_shape`` -> async H2D -> ``set_tensor_address`` -> ``execute_async_v3`` -> async D2H -> sync.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import QyoloError
from ..base import Runner
from .adapter import load_api
from .runtime import Buffer, CudaStream, require_gpu
from .sidecar import check_sidecar, read_sidecar, verify_engine


class TrtRunner(Runner):
    """A TensorRT engine on the local GPU. Options: ``device`` (CUDA device index, default 0)."""

    name = "trt"

    def _activate_impl(self) -> None:
        self.sidecar = read_sidecar(self.artifact)
        plan = verify_engine(self.sidecar, self.artifact)  # a swapped or corrupt engine is refused before looking for a GPU
        gpu = require_gpu(int(self.options.get("device", 0)))
        api = load_api(self.sidecar["backend"])
        check_sidecar(self.sidecar, self.artifact, backend_version=api.version, gpu=gpu)
        self._logger = api.make_logger()
        self._runtime = api.trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise QyoloError(f"{self.artifact}: {api.backend} could not deserialise the engine ({(self._logger.errors or ['no message'])[0]})")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == api.trt.TensorIOMode.INPUT for n in names}
        self._inputs = [n for n in names if is_input[n]]
        self._outputs = [n for n in names if not is_input[n]]
        self._stream = CudaStream()
        max_batch = int(self.sidecar.get("batch", {}).get("max", 1))
        self._buffers: dict[str, Buffer] = {}
        for n in names:
            shape = tuple(max_batch if d < 0 else int(d) for d in self._engine.get_tensor_shape(n))
            self._buffers[n] = self._stream.alloc(shape, np.dtype(api.trt.nptype(self._engine.get_tensor_dtype(n))))
            self._context.set_tensor_address(n, int(self._buffers[n].device))

    def _deactivate_impl(self) -> None:
        for buf in getattr(self, "_buffers", {}).values():
            buf.free()
        if getattr(self, "_stream", None) is not None:
            self._stream.close()
        self._buffers, self._stream, self._context, self._engine, self._runtime = {}, None, None, None, None

    @property
    def input_name(self) -> str:
        return self._inputs[0]

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name in self._inputs:
            x = np.ascontiguousarray(feeds[name], dtype=self._buffers[name].dtype)
            if not self._context.set_input_shape(name, x.shape):
                raise QyoloError(f"input {name} shape {x.shape} is outside the engine's profile (batch {self.sidecar.get('batch')})")
            self._buffers[name].host(x.shape)[...] = x
            self._stream.upload(self._buffers[name], x.nbytes)
        if not self._context.execute_async_v3(self._stream.handle):
            raise QyoloError(f"{self.artifact}: TensorRT execution failed ({(self._logger.errors or ['no message'])[-1]})")
        shapes = {n: tuple(int(d) for d in self._context.get_tensor_shape(n)) for n in self._outputs}
        for n in self._outputs:
            self._stream.download(self._buffers[n], int(np.prod(shapes[n])) * self._buffers[n].dtype.itemsize)
        self._stream.synchronize()
        return {n: self._buffers[n].host(shapes[n]).copy() for n in self._outputs}

    def describe(self) -> dict[str, Any]:
        side = getattr(self, "sidecar", {})
        return {**super().describe(), "engine_backend": side.get("backend"), "precision": side.get("precision"), "targets": side.get("targets")}
