"""ONNX op -> torch function, for the ops YOLO exports use (float math differentiable; shape math on int64 tensors).

Each function takes the node's inputs (``None`` for an omitted optional input) and its attributes, and returns
the list of its outputs. Q/DQ pairs and weight DequantizeLinear never reach this table: ``graph`` turns them into
quantizer modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from onnx import TensorProto, helper, numpy_helper

from ..errors import QyoloError
from ..lazy import lazy_import

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")
F = torch.nn.functional

Tensor = Any  # torch.Tensor (torch is imported lazily)
Op = Callable[[Sequence[Tensor | None], dict[str, Any]], list[Tensor]]
OPS: dict[str, Op] = {}

DTYPES = {TensorProto.FLOAT: torch.float32, TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
          TensorProto.BOOL: torch.bool, TensorProto.DOUBLE: torch.float64, TensorProto.FLOAT16: torch.float16}  # fmt: skip


def op(*names: str) -> Callable[[Op], Op]:
    def register(fn: Op) -> Op:
        OPS.update(dict.fromkeys(names, fn))
        return fn

    return register


def _ints(t: Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _pads(pads: Sequence[int], ndim: int = 2) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """ONNX pads [b1, b2, e1, e2] -> (symmetric padding, F.pad argument when asymmetric)."""
    begin, end = list(pads[:ndim]) or [0] * ndim, list(pads[ndim:]) or [0] * ndim
    if begin == end:
        return tuple(begin), None
    return (0,) * ndim, tuple(v for b, e in zip(reversed(begin), reversed(end)) for v in (b, e))


@op("Conv")
def conv(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise QyoloError("torchq: Conv auto_pad is not supported (re-export with explicit pads)")
    padding, asym = _pads(a.get("pads", []))
    inp = F.pad(x[0], asym) if asym else x[0]
    bias = x[2] if len(x) > 2 else None
    return [F.conv2d(inp, x[1], bias, a.get("strides", 1), padding, a.get("dilations", 1), a.get("group", 1))]


@op("MaxPool")
def maxpool(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    padding, asym = _pads(a.get("pads", []))
    inp = F.pad(x[0], asym, value=float("-inf")) if asym else x[0]
    k = a["kernel_shape"]
    return [F.max_pool2d(inp, k, a.get("strides", k), padding, a.get("dilations", 1), bool(a.get("ceil_mode", 0)))]


@op("Resize")
def resize(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    """Nearest Resize: an integer upscale (every coordinate mode agrees), or asymmetric / floor (Ultralytics')."""
    sizes = x[3] if len(x) > 3 and x[3] is not None else None
    shape = _ints(sizes)[2:] if sizes is not None else [int(d * float(s)) for d, s in zip(x[0].shape[2:], x[2].tolist()[2:])]
    integer = all(o % i == 0 for o, i in zip(shape, x[0].shape[2:]))
    floor = a.get("coordinate_transformation_mode") == b"asymmetric" and a.get("nearest_mode") == b"floor"
    if a.get("mode", b"nearest") != b"nearest" or not (integer or floor):
        raise QyoloError("torchq: only nearest Resize by integer factors (or asymmetric / floor) is supported")
    return [F.interpolate(x[0], size=shape, mode="nearest")]


@op("Concat")
def concat(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    return [torch.cat(list(x), dim=a["axis"])]


@op("Split")
def split(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    axis = a.get("axis", 0)
    sizes = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("split")
    if sizes is None:
        n = a["num_outputs"]
        sizes = -(-x[0].shape[axis] // n)
    return list(torch.split(x[0], sizes, dim=axis))


@op("Slice")
def slice_(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    starts, ends = _ints(x[1]), _ints(x[2])
    axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
    steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    index = [slice(None)] * x[0].dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st < 1:
            raise QyoloError("torchq: Slice with a non-positive step is not supported")
        index[ax] = slice(s, e, st)
    return [x[0][tuple(index)]]


@op("Reshape")
def reshape(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    shape = _ints(x[1])
    if not a.get("allowzero", 0):
        shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x[0].reshape(shape)]


@op("Transpose")
def transpose(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    return [x[0].permute(a.get("perm", list(reversed(range(x[0].dim())))))]


@op("Softmax")
def softmax(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    return [torch.softmax(x[0], dim=a.get("axis", -1))]


@op("Shape")
def shape(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    dims = list(x[0].shape)[a.get("start", 0) : a.get("end")]
    return [torch.tensor(dims, dtype=torch.int64)]


@op("Gather")
def gather(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    data, idx, axis = x[0], x[1].long(), a.get("axis", 0) % x[0].dim()
    idx = torch.where(idx < 0, idx + data.shape[axis], idx)
    out = torch.index_select(data, axis, idx.reshape(-1))
    return [out.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1 :])]


@op("Unsqueeze")
def unsqueeze(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    out = x[0]
    axes = _ints(x[1]) if len(x) > 1 else a["axes"]
    for ax in sorted(ax % (x[0].dim() + len(axes)) for ax in axes):
        out = out.unsqueeze(ax)
    return [out]


@op("Pad")
def pad(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    if a.get("mode", "constant") not in ("constant", b"constant") or (len(x) > 3 and x[3] is not None):
        raise QyoloError("torchq: only Pad in constant mode over every axis is supported")
    pads, rank = _ints(x[1]), x[0].dim()
    value = float(x[2]) if len(x) > 2 and x[2] is not None and x[2].numel() else 0.0
    # ONNX: [begin_0 .. begin_n, end_0 .. end_n]; torch: (begin_last, end_last, begin_last-1, ...)
    order = [p for axis in reversed(range(rank)) for p in (pads[axis], pads[axis + rank])]
    return [torch.nn.functional.pad(x[0], order, value=value)]


@op("Constant")
def constant(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    return [a["value"]]


@op("Cast")
def cast(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    return [x[0].to(DTYPES[a["to"]])]


@op("Clip")
def clip(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    lo = x[1] if len(x) > 1 and x[1] is not None else None
    hi = x[2] if len(x) > 2 and x[2] is not None else None
    return [torch.clamp(x[0], lo, hi)]


@op("Div")
def div(x: Sequence[Tensor], a: dict[str, Any]) -> list[Tensor]:
    integer = not x[0].is_floating_point() and not x[1].is_floating_point()
    return [torch.div(x[0], x[1], rounding_mode="trunc") if integer else x[0] / x[1]]


def _unary(fn: Callable[[Tensor], Tensor]) -> Op:
    return lambda x, a: [fn(x[0])]


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda x, a: [fn(x[0], x[1])]


OPS.update({
    "Sigmoid": _unary(torch.sigmoid), "Floor": _unary(torch.floor), "Identity": _unary(lambda t: t),
    "Relu": _unary(torch.relu), "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Pow": _binary(torch.pow), "MatMul": _binary(torch.matmul),
})  # fmt: skip


def attributes(node: Any) -> dict[str, Any]:
    """A NodeProto's attributes as Python values (tensors as torch tensors)."""
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        out[attr.name] = torch.from_numpy(numpy_helper.to_array(value).copy()) if isinstance(value, TensorProto) else value
    return out
