"""Shifted-symmetric UH: quantize ``x - c`` symmetrically and fold ``c * sum(Wq[o])`` into each consumer's bias.

Exact where every consumer is an ungrouped 1x1 conv without padding. Where every consumer is an ungrouped conv
with the same zero padding (the 3x3 convs), the padding moves out of the convs into one explicit ``Pad`` before the
shift (``Pad(x, 0) - c``: the border pixels then read ``-c`` as they should, and the convs pad nothing), so those
tensors are shifted exactly too. Every other tensor stays plainly symmetric. A Concat output feeding only such convs
is shifted too (its inputs keep the group's symmetric scale): TensorRT-RTX fuses Concat + Sub + Q into the
producers' epilogues (yolov5n: 24 tensors shifted, 151 engine layers, vs 154 when Concat outputs are left
symmetric), and Pad + Sub + Q likewise (151 layers and 57/60 INT8 convs with the padded tensors shifted too).
"""

from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from ...calib.scales import TensorRange
from ..graph_ops import constant_values
from ..weights import quantize_per_channel


def _conv_pads(node: gs.Node) -> tuple[int, ...] | None:
    """An ungrouped 2-D Conv with a constant weight and explicit pads: its pads (top, left, bottom, right), else None."""
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if node.op != "Conv" or node.attrs.get("group", 1) != 1 or auto_pad not in ("NOTSET", "VALID", b"NOTSET", b"VALID"):
        return None
    w = constant_values(node.inputs[1])
    if w is None or w.ndim != 4:
        return None
    pads = tuple(int(p) for p in node.attrs.get("pads", [0, 0, 0, 0])) if auto_pad in ("NOTSET", b"NOTSET") else (0, 0, 0, 0)
    return pads if len(pads) == 4 else None


def is_pointwise_conv(node: gs.Node) -> bool:
    """An ungrouped Conv with a 1x1 kernel and no padding."""
    pads = _conv_pads(node)
    return pads is not None and not any(pads) and constant_values(node.inputs[1]).shape[2:] == (1, 1)


def shift_pads(consumers: list[gs.Node], rng: TensorRange, padded: bool) -> tuple[int, ...] | None:
    """How a tensor can be shifted exactly: ``()`` when it feeds only pointwise convs; with ``padded``, the convs'
    common pads when it feeds only ungrouped convs padded alike (the padding then moves into a ``Pad`` before the
    shift); else None (also when its range defines no finite shift and positive shift scale)."""
    ok_range = rng.shift is not None and rng.shift_scale is not None and math.isfinite(rng.shift) and rng.shift_scale > 0
    if not ok_range or not consumers:
        return None
    if all(is_pointwise_conv(c) for c in consumers):
        return ()
    pads = {_conv_pads(c) for c in consumers}
    common = pads.pop() if padded and len(pads) == 1 else None
    return common if common is not None and any(common) else None


def fold_shift(graph: gs.Graph, conv: gs.Node, shift: float, clip: str = "minmax") -> None:
    """Compensate ``conv`` for reading ``x - shift``: bias += shift * sum over (in, kh, kw) of the weight as the
    engine sees it (int8 per-channel, dequantized). Folding the float weight instead leaves a per-channel offset
    ``shift * sum(W - Wq)``: on yolov5n that cost 8 dB of head SQNR (23.0 vs 31.0 dB)."""
    q, scale = quantize_per_channel(constant_values(conv.inputs[1]), axis=0, clip=clip, name=conv.inputs[1].name)
    w = q.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    graph.add_to_bias(conv, (shift * w.sum(axis=(1, 2, 3))).astype(np.float32))
