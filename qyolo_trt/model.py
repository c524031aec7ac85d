"""Load an ONNX detector, validate it, and recognise its head layout."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import QyoloError
from .fileio import sha256_bytes

Layout = Literal["anchor_free", "anchor_based", "nms"]
Dim = int | str
NMS_OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes")
STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class DetectorInfo:
    """What the pipeline needs to know about a YOLO ONNX detector."""

    input_name: str
    input_shape: list[Dim]  # [N, 3, H, W]; N may be symbolic
    output_names: list[str]
    output_shape: list[Dim]  # of the main output (or det_boxes for an NMS head)
    layout: Layout
    num_classes: int
    imgsz: tuple[int, int]  # (H, W)
    dynamic_batch: bool
    opset: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_onnx(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX file with a one-line error for a missing, foreign or truncated file, normalised
    (``qyolo_trt.normalize``: constant Identity chains folded, so every pass sees each conv's weight and bias)."""
    from .normalize import normalize

    p = Path(path)
    if not p.exists():
        raise QyoloError(f"{p}: no such file")
    if p.is_dir():
        raise QyoloError(f"{p}: is a directory, expected an .onnx file")
    try:
        model = onnx.load(str(p), load_external_data=load_external_data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise QyoloError(f"{p}: not a readable ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or not model.graph.output:
        raise QyoloError(f"{p}: not a readable ONNX model (empty or truncated graph)")
    return normalize(model)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy of ``model`` (rewrites never mutate their input)."""
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


def check_finite_weights(model: onnx.ModelProto) -> None:
    """Refuse a model whose float initializers hold inf/nan (e.g. an fp16 overflow in export), naming the first."""
    for init in model.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            values = numpy_helper.to_array(init)
            if not np.isfinite(values).all():
                raise QyoloError(f"initializer {init.name} has {int((~np.isfinite(values)).sum())} non-finite value(s) (inf/nan): "
                                 "the model itself is broken; re-export it")


def model_hash(model: onnx.ModelProto) -> str:
    """Content hash of a model (SHA-256 of the deterministic serialisation of its normalised form, so a model and
    its ``qyolo_trt.normalize`` result hash the same)."""
    from .normalize import normalize

    return sha256_bytes(normalize(model).SerializeToString(deterministic=True))


def _dims(value_info: onnx.ValueInfoProto) -> list[Dim]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) operator set ``model`` imports; 0 when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def raise_default_opset(model: onnx.ModelProto, opset: int) -> None:
    """Import the default operator set at version ``opset`` at least (in place)."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, opset)


def inspect_detector(model: onnx.ModelProto, source: str = "model") -> DetectorInfo:
    """Recognise a YOLO detector: input [N,3,H,W]; output [N,4+C,A] (anchor-free),
    [N,A,5+C] (anchor-based) or the four EfficientNMS outputs. Anything else is rejected."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise QyoloError(f"{source}: not a YOLO detector: expected 1 image input, found {len(inputs)}")
    in_shape = _dims(inputs[0])
    if len(in_shape) != 4 or in_shape[1] != 3 or not all(isinstance(d, int) and d > 0 for d in in_shape[2:]):
        raise QyoloError(f"{source}: not a YOLO detector: input {inputs[0].name} has shape {in_shape}, expected [N,3,H,W] with fixed H, W")
    h, w = int(in_shape[2]), int(in_shape[3])
    outputs = list(model.graph.output)
    names = [o.name for o in outputs]
    common = dict(
        input_name=inputs[0].name,
        input_shape=in_shape,
        output_names=names,
        imgsz=(h, w),
        dynamic_batch=not isinstance(in_shape[0], int),
        opset=default_opset(model),
    )
    if tuple(names) == NMS_OUTPUTS:
        return DetectorInfo(output_shape=_dims(outputs[1]), layout="nms", num_classes=-1, **common)
    main = outputs[0]
    out_shape = _dims(main)
    if len(out_shape) != 3:
        raise QyoloError(f"{source}: not a YOLO detector: output {main.name} has shape {out_shape}, expected [N,4+C,A] or [N,A,5+C]")
    a_free = sum((h // s) * (w // s) for s in STRIDES)
    d1, d2 = out_shape[1], out_shape[2]
    if isinstance(d2, int) and isinstance(d1, int) and d2 == a_free and d1 > 4:
        return DetectorInfo(output_shape=out_shape, layout="anchor_free", num_classes=d1 - 4, **common)
    if isinstance(d1, int) and isinstance(d2, int) and d1 in (a_free, 3 * a_free) and d2 > 5:
        return DetectorInfo(output_shape=out_shape, layout="anchor_based", num_classes=d2 - 5, **common)
    raise QyoloError(
        f"{source}: not a YOLO detector: output {main.name} has shape {out_shape}; for a {h}x{w} input expected "
        f"[N,4+C,{a_free}] (anchor-free) or [N,{3 * a_free},5+C] (anchor-based)"
    )


def load_detector(path: str | os.PathLike) -> tuple[onnx.ModelProto, DetectorInfo]:
    """Load and validate a YOLO ONNX detector."""
    model = load_onnx(path)
    return model, inspect_detector(model, source=str(path))
