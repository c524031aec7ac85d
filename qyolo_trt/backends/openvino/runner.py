"""Runner over an OpenVINO CPU compiled model."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import QyoloError
from ...lazy import lazy_import
from ..base import Runner
from .runtime_model import conv_precisions

PRECISIONS = ("default", "f32")
HINTS = ("latency", "throughput")


class OpenVinoRunner(Runner):
    """OpenVINO on CPU. Options: ``precision`` ("default": OpenVINO's choice, bf16 on CPUs that have it;
    "f32": ``INFERENCE_PRECISION_HINT=f32``), ``threads`` (0 = OpenVINO's default) and ``share_outputs``
    (outputs alias the request's buffers, valid until the next ``infer``: no copy, for benchmarks) and
    ``perf_count`` (per-layer timing, read with ``runtime_model.layer_times(runner.request)``), ``hint`` ("latency":
    one stream, one request; "throughput": OpenVINO's THROUGHPUT hint, and each ``infer`` runs its optimal number of
    infer requests in parallel on the same input, returning the first one's outputs; ``describe()["requests"]``)."""

    name = "openvino"

    def __init__(self, artifact: Any, **options: Any) -> None:
        super().__init__(artifact, **options)
        self.precision = str(options.get("precision", "default"))
        if self.precision not in PRECISIONS:
            raise QyoloError(f"unknown OpenVINO precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        self.threads = int(options.get("threads", 0))
        self.share_outputs = bool(options.get("share_outputs", False))
        self.perf_count = bool(options.get("perf_count", False))
        self.hint = str(options.get("hint", HINTS[0]))
        if self.hint not in HINTS:
            raise QyoloError(f"unknown OpenVINO performance hint {self.hint!r}; choose from {', '.join(HINTS)}")

    def config(self) -> dict[str, str]:
        """The CPU plugin properties this runner compiles with (latency: one stream; throughput: OpenVINO's streams)."""
        config = {"PERFORMANCE_HINT": "THROUGHPUT"} if self.hint == "throughput" else {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if self.precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if self.threads > 0:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        if self.perf_count:
            config["PERF_COUNT"] = "YES"
        return config

    def _activate_impl(self) -> None:
        ov = lazy_import("openvino", "openvino", "OpenVINO")
        if not self.artifact.is_file():
            raise QyoloError(f"{self.artifact}: no such file")
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.artifact)), "CPU", self.config())
        except RuntimeError as exc:
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise QyoloError(f"{self.artifact}: OpenVINO cannot load it ({first[:200]})") from None
        self.queue = ov.AsyncInferQueue(self.compiled, 0) if self.hint == "throughput" else None  # 0: the optimal number
        self.request = self.queue[0] if self.queue is not None else self.compiled.create_infer_request()

    def _deactivate_impl(self) -> None:
        self.request = None
        self.queue = None
        self.compiled = None

    @property
    def input_name(self) -> str:
        return self.compiled.inputs[0].get_any_name()

    @property
    def output_names(self) -> list[str]:
        return [o.get_any_name() for o in self.compiled.outputs]

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.queue is None:
            results = self.request.infer(feeds, share_inputs=True, share_outputs=self.share_outputs)
            return {o.get_any_name(): results[o] for o in self.compiled.outputs}
        for _ in range(len(self.queue)):
            self.queue.start_async(feeds, share_inputs=True)
        self.queue.wait_all()
        outputs = {o.get_any_name(): self.request.get_tensor(o).data for o in self.compiled.outputs}
        return outputs if self.share_outputs else {k: v.copy() for k, v in outputs.items()}

    def execution_precision(self) -> str:
        """The floating-point precision the compiled model actually runs in (e.g. "f32", "bf16")."""
        return self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def describe(self) -> dict[str, Any]:
        info = {"backend": self.name, "artifact": str(self.artifact), "precision": self.precision, "threads": self.threads, "hint": self.hint}
        if getattr(self, "compiled", None) is not None:
            info["requests"] = len(self.queue) if self.queue is not None else 1
            info["execution_precision"] = self.execution_precision()
            info["conv_precisions"] = conv_precisions(self.compiled.get_runtime_model())
        return info
