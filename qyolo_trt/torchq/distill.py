"""The label-free QAT objective: the quantized model's features against the FP32 model's, on (cropped) images.

Targets are the detection head's final conv outputs and their inputs (the neck / head features they read); the loss
sums each target's noise-to-signal energy (1 / SQNR), so large and small tensors count alike. For crops, Resizes to
a constant size (yolov5's export) become Resizes by their scale factor, so every crop on the stride grid runs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..lazy import lazy_import
from ..model import copy_model
from ..qdq import head_conv_outputs
from .graph import TorchGraph

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")

STRIDE = 32  # YOLO's largest stride: crops on this grid keep every feature level aligned with the full image's


def distill_targets(fp32: onnx.ModelProto) -> list[str]:
    """The head's final conv outputs, then the tensors those convs read (names shared by the FP32 and QDQ models)."""
    outputs = head_conv_outputs(fp32)
    producer = {o: n for n in fp32.graph.node for o in n.output}
    return list(dict.fromkeys([*outputs, *(producer[o].input[0] for o in outputs)]))


def distill_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the targets of ``mean((student - teacher)^2) / mean(teacher^2)``."""
    return sum((student[t] - ref).square().mean() / ref.square().mean().clamp_min(1e-12) for t, ref in teacher.items())


def resizes_by_scale(model: onnx.ModelProto, input_name: str, imgsz: tuple[int, int]) -> onnx.ModelProto:
    """``model`` with every Resize to constant ``sizes`` turned into a Resize by the factor it has at ``imgsz``."""
    sized = [n for n in model.graph.node if n.op_type == "Resize" and len(n.input) > 3 and n.input[3]]
    if not sized:
        return model
    with torch.no_grad():
        shapes = TorchGraph(model)({input_name: torch.zeros(1, 3, *imgsz)}, [t for n in sized for t in (n.input[0], n.output[0])])
    out = copy_model(model)
    names = {n.name for n in sized}
    for node in out.graph.node:
        if node.name in names:
            src, dst = shapes[node.input[0]].shape, shapes[node.output[0]].shape
            factors = numpy_helper.from_array(np.array([d / s for s, d in zip(src, dst)], np.float32), f"{node.name}_scale_factors")
            out.graph.initializer.append(factors)
            node.input[2] = factors.name
            del node.input[3]
    return out


def random_window(rng: np.random.Generator, height: int, width: int, crop: float) -> tuple[slice, slice]:
    """A random ``crop``-sized window (rows, columns) on the ``STRIDE`` grid; the whole image at ``crop`` 1."""
    rows, cols = (min(side, max(STRIDE, round(crop * side / STRIDE) * STRIDE)) for side in (height, width))
    top = STRIDE * int(rng.integers(0, (height - rows) // STRIDE + 1))
    left = STRIDE * int(rng.integers(0, (width - cols) // STRIDE + 1))
    return slice(top, top + rows), slice(left, left + cols)
