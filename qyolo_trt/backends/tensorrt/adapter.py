"""The one place that knows how TensorRT 10, TensorRT 11 and TensorRT-RTX differ (detected at run time).

| | TensorRT 10 | TensorRT 11 | TensorRT-RTX |
|---|---|---|---|
| module | ``tensorrt`` 10.x | ``tensorrt`` 11.x | ``tensorrt_rtx`` |
| typing | weak: ``BuilderFlag.INT8`` / ``FP16`` | strong only (flags, calibrators, dynamic ranges removed) | strong only |
| INT8 | Q/DQ + ``BuilderFlag.INT8`` | Q/DQ | Q/DQ |
| FP16 | ``BuilderFlag.FP16`` | FP16 graph (ONNX converted) | FP16 graph (ONNX converted) |
| targets | the local GPU | the local GPU | any ``ComputeCapability`` ahead of time, no GPU |
| timing cache | yes | yes | no-op (deprecated) |
| layer report | ``IEngineInspector`` JSON | ``IEngineInspector`` JSON | DETAILED VERBOSE builder log |
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from ...errors import DependencyError, QyoloError
from ...lazy import lazy_import
from .report import LayerInfo, parse_inspector_json, parse_layer_log
from .runtime import GpuInfo, require_gpu

Flavor = Literal["trt10", "trt11", "rtx"]
_PLUGIN_LOGGERS: dict[ModuleType, Any] = {}  # TensorRT module -> the process-lifetime logger its plugin registry points to
BACKENDS: dict[str, tuple[str, str]] = {  # backend -> (python module, pip extra)
    "tensorrt": ("tensorrt", "trt"),
    "tensorrt-rtx": ("tensorrt_rtx", "rtx"),
}


def _import(backend: str) -> ModuleType:
    module, extra = BACKENDS[backend]
    return lazy_import(module, extra, backend)


def make_logger(trt: ModuleType) -> Any:
    """A TensorRT logger that keeps every message (the layer report is parsed from them)."""

    class CaptureLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            self.messages.append(msg)
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg.strip().splitlines()[0] if msg.strip() else msg)

    return CaptureLogger()


@dataclass
class TrtApi:
    """A loaded TensorRT module and its flavour."""

    trt: ModuleType
    backend: str  # "tensorrt" | "tensorrt-rtx"
    flavor: Flavor
    version: str

    @property
    def strongly_typed(self) -> bool:
        return self.flavor != "trt10"

    @property
    def needs_gpu_to_build(self) -> bool:
        return self.flavor != "rtx"

    def make_logger(self) -> Any:
        """A capturing logger, with TensorRT's bundled plugins (EfficientNMS_TRT, ...) registered against it.

        Registration must precede both parsing and deserialisation: a fresh process cannot load an engine
        that uses a plugin otherwise ("getPluginCreator could not find plugin").
        """
        logger = make_logger(self.trt)
        init_plugins = getattr(self.trt, "init_libnvinfer_plugins", None)
        if init_plugins is not None and self.trt not in _PLUGIN_LOGGERS:
            # the plugin library keeps a raw pointer to this logger: it must live as long as the process
            _PLUGIN_LOGGERS[self.trt] = plugin_logger = make_logger(self.trt)
            init_plugins(plugin_logger, "")
        return logger

    def create_network(self, builder: Any) -> Any:
        # TRT 10: weakly typed (precision via flags); TRT 11 / RTX: networks are always strongly typed
        return builder.create_network(0)

    def set_precision(self, config: Any, precision: str) -> None:
        """TRT 10 enables reduced-precision kernels with flags (INT8 with FP16, so what is not INT8 may run in half
        precision rather than FP32); strongly typed builds take types from the graph."""
        if self.flavor == "trt10" and precision in ("int8", "fp16"):
            config.set_flag(self.trt.BuilderFlag.FP16)
            if precision == "int8":
                config.set_flag(self.trt.BuilderFlag.INT8)

    def set_targets(self, config: Any, targets: tuple[str, ...], gpu: GpuInfo | None) -> None:
        """RTX: compile for each compute capability ahead of time. Standard TensorRT: only for the local GPU."""
        if self.flavor == "rtx":
            config.num_compute_capabilities = len(targets)
            for i, cc in enumerate(targets):
                config.set_compute_capability(getattr(self.trt.ComputeCapability, cc.upper()), i)
            return
        assert gpu is not None
        if tuple(targets) != (gpu.cc,):
            raise QyoloError(
                f"standard TensorRT builds only for the GPU in this machine ({gpu.name}, {gpu.cc}), not {', '.join(targets)}: "
                f"pass --gpu {gpu.cc}, or --backend tensorrt-rtx to build for other GPUs ahead of time"
            )

    def set_timing_cache(self, config: Any, data: bytes) -> bool:
        """Load a timing cache; False where the backend has none (TensorRT-RTX: a deprecated no-op)."""
        if self.flavor == "rtx":
            return False
        cache = config.create_timing_cache(data)
        if cache is None:  # TensorRT returns None, not an exception, for bytes that are not a timing cache
            raise QyoloError("the timing cache is not readable by TensorRT (corrupt, or not a timing cache); delete it")
        if not config.set_timing_cache(cache, False):
            raise QyoloError("the timing cache was rejected by TensorRT (another TensorRT version or GPU?); delete it")
        return True

    def timing_cache_bytes(self, config: Any) -> bytes:
        return bytes(config.get_timing_cache().serialize())

    def layers(self, plan: bytes, logger: Any) -> tuple[list[LayerInfo], str]:
        """The engine's layers: RTX from the builder log; standard TensorRT from the engine inspector."""
        if self.flavor == "rtx":
            return parse_layer_log(logger.messages), "builder-log"
        engine = self.trt.Runtime(logger).deserialize_cuda_engine(plan)
        if engine is None:
            raise QyoloError(f"{self.backend} could not deserialise the engine it just built ({_first(logger.errors)})")
        inspector = engine.create_engine_inspector()
        return parse_inspector_json(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)), "engine-inspector"


def _first(errors: list[str]) -> str:
    return errors[0] if errors else "no error message"


def detect(trt: ModuleType, backend: str) -> TrtApi:
    """Flavour of an imported TensorRT module, from its name and version."""
    version = str(getattr(trt, "__version__", "0"))
    if backend == "tensorrt-rtx":
        return TrtApi(trt, backend, "rtx", version)
    major = int(version.split(".")[0] or 0)
    if major < 10:
        raise DependencyError(f"TensorRT {version} is not supported (need 10.x or 11.x); pip install 'qyolo-trt[trt]'")
    return TrtApi(trt, backend, "trt10" if major == 10 else "trt11", version)


def load_api(backend: str) -> TrtApi:
    """Import ``tensorrt`` or ``tensorrt_rtx`` and detect its flavour."""
    if backend not in BACKENDS:
        raise QyoloError(f"unknown TensorRT backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
    return detect(_import(backend), backend)


def resolve_backend(backend: str = "auto") -> str:
    """``auto``: standard TensorRT when it and a GPU are present, else TensorRT-RTX (ahead of time, no GPU)."""
    if backend != "auto":
        return backend
    try:
        _import("tensorrt")
        require_gpu()
        return "tensorrt"
    except DependencyError as std:
        try:
            _import("tensorrt-rtx")
        except DependencyError:
            raise DependencyError(f"no TensorRT backend: {std}; and TensorRT-RTX is not installed (pip install 'qyolo-trt[rtx]')") from None
        return "tensorrt-rtx"
