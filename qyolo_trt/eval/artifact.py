"""What eval needs to know about an artifact (ONNX or TensorRT engine): head layout, input size, classes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import QyoloError
from ..lazy import lazy_import
from ..model import inspect_detector, load_onnx
from .decode import Head

COCO_CLASSES = 80


@dataclass(frozen=True)
class ArtifactInfo:
    """Head layout and preprocessing size of a model or engine."""

    head: Head
    imgsz: tuple[int, int]
    num_classes: int  # COCO's 80 for EfficientNMS heads (their class count is not in the graph)


def artifact_info(path: str | os.PathLike) -> ArtifactInfo:
    """From the ONNX graph, or from an engine's ``NAME.engine.json`` sidecar."""
    p = Path(path)
    if p.suffix == ".engine":
        return _engine_info(p)
    info = inspect_detector(load_onnx(p), source=str(p))
    return ArtifactInfo(Head.from_names(info.layout, info.output_names), info.imgsz, _classes(info.num_classes))


def _engine_info(p: Path) -> ArtifactInfo:
    sidecar = lazy_import("qyolo_trt.backends.tensorrt.sidecar", "trt", "the TensorRT backend").read_sidecar(p)
    try:
        layout = sidecar["layout"]
        h, w = (int(d) for d in sidecar["inputs"][0]["shape"][2:4])
        outputs = sidecar["outputs"]
        names = [o["name"] for o in outputs]
        shape = outputs[0]["shape"]
    except (KeyError, IndexError, TypeError, ValueError):
        raise QyoloError(f"{p}: its sidecar lacks layout/inputs/outputs; rebuild the engine") from None
    classes = {"anchor_free": lambda: shape[1] - 4, "anchor_based": lambda: shape[2] - 5}.get(layout, lambda: -1)()
    return ArtifactInfo(Head.from_names(layout, names), (h, w), _classes(int(classes)))


def _classes(n: int) -> int:
    return n if n > 0 else COCO_CLASSES
