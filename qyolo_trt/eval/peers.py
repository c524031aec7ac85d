"""Other quantizers as comparison rows, when importable: ONNX Runtime's ``quantize_static`` (QDQ)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..data import ImageLoader
from ..model import DetectorInfo, load_onnx


@dataclass
class PeerModel:
    """A peer's quantized model and how long its calibration + quantization took."""

    label: str
    model: onnx.ModelProto
    seconds: float
    note: str


def ort_minmax(model_path: Path, info: DetectorInfo, calib: Sequence[Path], head_convs: Sequence[str]) -> PeerModel:
    """ORT ``quantize_static``: QDQ, per-channel int8 weights, symmetric int8 activations (TensorRT-style), MinMax;
    Conv / MaxPool / Resize inputs, the head's final convs float (the same exclusion as ours)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator = iter(ImageLoader(list(calib), info.imgsz))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {info.input_name: batch.images}

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qyolo-ort-") as tmp, _quiet_root_logger():
        out = Path(tmp) / "ort.qdq.onnx"
        quantize_static(
            str(model_path),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "MaxPool", "Resize"],
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_producers(load_onnx(model_path), head_convs),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
        model = load_onnx(out)
    return PeerModel("ort-minmax", model, time.perf_counter() - t0, "onnxruntime.quantization.quantize_static, per-channel, MinMax")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ORT's quantizer warns on the root logger ("consider pre-processing"); keep stderr for our own logs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _producers(model: onnx.ModelProto, tensors: Sequence[str]) -> list[str]:
    wanted = set(tensors)
    return [n.name for n in model.graph.node if wanted & set(n.output)]


def other_toolkits() -> dict[str, str]:
    """NNCF / ModelOpt: not installed here, or installed but without a row yet (reported, not run)."""
    return {m: "installed (no row implemented)" if importlib.util.find_spec(m) else "not installed" for m in ("nncf", "modelopt")}
