"""Other quantizers as comparison rows, when importable: ONNX Runtime's ``quantize_static`` (QDQ) and NNCF.
(ModelOpt has no row: its ONNX extra pins onnx/onnxruntime versions that cannot be installed beside ours.)"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper

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
    with tempfile.TemporaryDirectory(prefix="qyolo-ort-") as tmp, _quiet_loggers(""):
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
def _quiet_loggers(*names: str) -> Iterator[None]:
    """Peers log chatter (ORT's "consider pre-processing" on the root logger, NNCF's INFO lines): errors only."""
    loggers = [logging.getLogger(n or None) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _producers(model: onnx.ModelProto, tensors: Sequence[str]) -> list[str]:
    wanted = set(tensors)
    return [n.name for n in model.graph.node if wanted & set(n.output)]


def nncf_ptq(model_path: Path, info: DetectorInfo, calib: Sequence[Path], head_convs: Sequence[str]) -> PeerModel:
    """NNCF post-training quantization of the ONNX model: performance preset (symmetric), its default
    fast bias correction, every calibration image, the head's final convs ignored (the same exclusion as ours)."""
    import nncf

    model = load_onnx(model_path)
    dataset = nncf.Dataset(list(ImageLoader(list(calib), info.imgsz)), lambda b: {info.input_name: b.images})
    t0 = time.perf_counter()
    with _quiet_loggers("", "nncf"), contextlib.redirect_stdout(sys.stderr):  # its progress bars print on stdout
        quantized = nncf.quantize(
            model,
            dataset,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(calib),
            ignored_scope=nncf.IgnoredScope(names=_producers(model, head_convs)),
        )
    return PeerModel("nncf", quantized, time.perf_counter() - t0, f"nncf {nncf.__version__} quantize, performance preset")


PEERS = {"ort-minmax": ("onnxruntime.quantization", ort_minmax), "nncf": ("nncf", nncf_ptq)}


def available_peers() -> dict[str, bool]:
    """Which peer quantizers can run here."""
    return {name: importlib.util.find_spec(module.split(".")[0]) is not None for name, (module, _) in PEERS.items()}


def run_peers(model_path: Path, info: DetectorInfo, calib: Sequence[Path], head_convs: Sequence[str]) -> list[PeerModel]:
    """Every importable peer's quantized model."""
    ok = available_peers()
    return [fn(model_path, info, calib, head_convs) for name, (_, fn) in PEERS.items() if ok[name]]


def qdq_target(model: onnx.ModelProto) -> str:
    """"TensorRT" when every QuantizeLinear is int8 with zero point 0, else "zero-point"."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in inits:
            zp = onnx.numpy_helper.to_array(inits[node.input[2]])
            if zp.dtype != np.int8 or zp.any():
                return "zero-point"
    return "TensorRT"
