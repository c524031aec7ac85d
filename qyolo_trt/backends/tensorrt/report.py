"""The build report: which ONNX nodes fused into which engine layer, and in which precision.

Two sources, one result (``EngineReport``):
- the builder's VERBOSE log with ``ProfilingVerbosity.DETAILED`` (TensorRT-RTX, no GPU needed): one line per
  layer, ``Name: ..., LayerType: ..., Inputs: [ { Name: x, Dimensions: [1,3,640,640], ..., Datatype: Float, ... } ],
  Constants: [...], Outputs: [...], ..., Metadata: [ONNX Layer: /model.0/conv/Conv][ONNX Layer: ...]``;
- ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` (standard TensorRT 10/11, needs a
  deserialised engine): ``{"Layers": [{"Name", "LayerType", "Inputs": [{"Dimensions", "Format/Datatype"}], ...,
  "Metadata"}]}``.
A Conv "runs INT8" when an engine layer that implements it reads an Int8 activation. Activation traffic is the sum
over layer outputs of elements x dtype size; a dynamic dimension (-1 in both sources) counts as 1, i.e. per image.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

CONV_OPS = frozenset({"Conv", "ConvTranspose"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_DTYPES = (  # (pattern, canonical name), most specific first
    (r"\bu?int8\b", "Int8"),
    (r"\bint4\b", "Int4"),
    (r"\bint32\b", "Int32"),
    (r"\bint64\b", "Int64"),
    (r"\bbf16\b|\bbfloat16\b", "BFloat16"),
    (r"\bfp16\b|\bhalf\b|\bfloat16\b", "Half"),
    (r"\bfp8\b", "FP8"),
    (r"\bfp32\b|\bfloat\b|\bfloat32\b", "Float"),
    (r"\bbool\b", "Bool"),
)
DTYPE_BITS = {"Int4": 4, "Int8": 8, "FP8": 8, "Bool": 8, "Half": 16, "BFloat16": 16, "Float": 32, "Int32": 32, "Int64": 64}
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_LINE = re.compile(r"^Name: (?P<name>.*?), LayerType: (?P<type>[^,]*), Inputs: \[(?P<inputs>.*?)\], (?:Constants|Outputs): \[")
_OUTPUTS = re.compile(r"Outputs: \[(?P<outputs>.*?)\], TacticName:")


@dataclass(frozen=True)
class LayerInfo:
    """One engine layer (kernel): its type, activation dtypes and the ONNX nodes fused into it."""

    name: str
    type: str
    input_dtypes: tuple[str, ...]
    output_dtypes: tuple[str, ...]
    onnx_nodes: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...], ...] = ()  # one per output; empty when the source gave no dimensions

    @property
    def reads_int8(self) -> bool:
        return "Int8" in self.input_dtypes

    @property
    def output_bytes(self) -> dict[str, int] | None:
        """Bytes this layer writes, per dtype (dynamic dimensions count as 1); None without shapes for every output."""
        if len(self.output_shapes) != len(self.output_dtypes):
            return None
        out: Counter[str] = Counter()
        for dtype, shape in zip(self.output_dtypes, self.output_shapes):
            out[dtype] += math.prod(d if d >= 0 else 1 for d in shape) * DTYPE_BITS.get(dtype, 0) // 8
        return dict(out)


@dataclass
class EngineReport:
    """What the engine does with the model: layer counts by type, INT8 convs, nodes left in float."""

    layers: list[LayerInfo]
    conv_int8: int
    conv_total: int
    float_nodes: list[str]  # ONNX compute nodes (not Q/DQ) with no engine layer reading Int8
    float_convs: list[str]  # the Conv / ConvTranspose among them
    layers_by_type: dict[str, int] = field(default_factory=dict)
    source: str = "builder-log"

    @property
    def output_dtypes(self) -> dict[str, int]:
        """The engine's precision mix: layer outputs per dtype, e.g. ``{"Float": 58, "Half": 6, "Int8": 55}``."""
        return dict(sorted(Counter(d for layer in self.layers for d in layer.output_dtypes).items()))

    @property
    def activation_bytes_by_dtype(self) -> dict[str, int] | None:
        """Bytes of activation traffic (the engine's layer outputs) per dtype; None when a layer lacks shapes."""
        per_layer = [layer.output_bytes for layer in self.layers]
        if not per_layer or None in per_layer:
            return None
        return dict(sorted(sum(map(Counter, per_layer), Counter()).items()))

    @property
    def activation_bytes(self) -> int | None:
        """Total bytes of activation traffic per image; None when unknown."""
        by_dtype = self.activation_bytes_by_dtype
        return None if by_dtype is None else sum(by_dtype.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_layers": len(self.layers),
            "layers_by_type": self.layers_by_type,
            "output_dtypes": self.output_dtypes,
            "activation_bytes": self.activation_bytes,
            "activation_bytes_by_dtype": self.activation_bytes_by_dtype,
            "conv_int8": self.conv_int8,
            "conv_total": self.conv_total,
            "float_convs": self.float_convs,
            "float_nodes": self.float_nodes,
            "source": self.source,
            "layers": [asdict(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineReport":
        layers = [LayerInfo(**{k: _tuples(v) for k, v in d.items()}) for d in data.get("layers", [])]
        return cls(
            layers=layers,
            conv_int8=int(data["conv_int8"]),
            conv_total=int(data["conv_total"]),
            float_nodes=list(data.get("float_nodes", [])),
            float_convs=list(data.get("float_convs", [])),
            layers_by_type=dict(data.get("layers_by_type", {})),
            source=str(data.get("source", "")),
        )


def _tuples(value: Any) -> Any:
    """JSON lists (nested: output shapes) back to the tuples of ``LayerInfo``."""
    return tuple(map(_tuples, value)) if isinstance(value, list) else value


# the whole value ("Int8", or "Thirty-two wide channel vectorized row major Int8 format" after Format/Datatype), not its first word
_DATATYPE = re.compile(r"Datatype: ([^,}\]]+)")
_TENSOR = re.compile(r"\{([^{}]*)\}")  # one tensor of a log line's Inputs / Outputs list
_DIMS = re.compile(r"Dimensions: \[([^\]]*)\]")


def canonical_dtype(text: str) -> str:
    """``"Int8"``, ``"Thirty-two wide channel vectorized row major Int8 format."``, ``"FP16"`` -> canonical name."""
    low = text.lower()
    return next((name for pattern, name in _DTYPES if re.search(pattern, low)), text.strip() or "?")


def _log_tensors(text: str) -> list[tuple[str, tuple[int, ...] | None]]:
    """``{ Name: a, Dimensions: [1,4,8,8], ..., Datatype: Int8, ... }, ...`` -> [(dtype, shape or None)]."""
    out = []
    for body in _TENSOR.findall(text):
        dtype, dims = _DATATYPE.search(body), _DIMS.search(body)
        shape = tuple(int(d) for d in dims.group(1).split(",") if d.strip()) if dims else None
        out.append((canonical_dtype(dtype.group(1) if dtype else ""), shape))
    return out


def _layer(name: str, type_: str, inputs: list, outputs: list, metadata: str) -> LayerInfo:
    """A ``LayerInfo`` from [(dtype, shape or None)] lists; shapes kept only when every output has one."""
    shapes = tuple(s for _, s in outputs)
    return LayerInfo(
        name=name,
        type=type_,
        input_dtypes=tuple(d for d, _ in inputs),
        output_dtypes=tuple(d for d, _ in outputs),
        onnx_nodes=tuple(_ONNX_LAYER.findall(metadata)),
        output_shapes=shapes if None not in shapes else (),
    )


def parse_layer_log(messages: Iterable[str]) -> list[LayerInfo]:
    """Layers from the builder's DETAILED VERBOSE log (messages may span several lines); duplicates dropped."""
    layers: dict[str, LayerInfo] = {}
    for line in (ln for msg in messages for ln in msg.splitlines()):
        m = _LINE.match(line)
        if not m or m.group("name") in layers:
            continue
        out = _OUTPUTS.search(line, m.end("inputs"))
        layers[m.group("name")] = _layer(m.group("name"), m.group("type").strip(), _log_tensors(m.group("inputs")),
                                         _log_tensors(out.group("outputs") if out else ""), line.rpartition("Metadata:")[2])
    return list(layers.values())


def _json_tensor(tensor: Mapping[str, Any]) -> tuple[str, tuple[int, ...] | None]:
    raw = tensor.get("Datatype") or tensor.get("DataType") or tensor.get("Format/Datatype") or ""
    dims = tensor.get("Dimensions")
    return canonical_dtype(str(raw)), tuple(int(d) for d in dims) if isinstance(dims, list) else None


def parse_inspector_json(text: str) -> list[LayerInfo]:
    """Layers from ``IEngineInspector`` JSON (TensorRT 10 ``Bindings`` or 11 ``I/O Tensors`` schema alike)."""
    data = json.loads(text)
    layers: dict[str, LayerInfo] = {}
    for layer in data.get("Layers", []):
        if not isinstance(layer, dict) or layer.get("Name") in layers:
            continue  # LAYER_NAMES_ONLY gives bare strings: nothing to report
        layers[layer["Name"]] = _layer(layer["Name"], str(layer.get("LayerType", "?")),
                                       [_json_tensor(t) for t in layer.get("Inputs", [])],
                                       [_json_tensor(t) for t in layer.get("Outputs", [])], str(layer.get("Metadata", "")))
    return list(layers.values())


def make_report(layers: list[LayerInfo], op_types: Mapping[str, str], source: str = "builder-log") -> EngineReport:
    """Combine engine layers with the ONNX model's ``{node name: op type}``."""
    int8_nodes = {n for layer in layers if layer.reads_int8 for n in layer.onnx_nodes}
    seen = dict.fromkeys(n for layer in layers for n in layer.onnx_nodes)
    compute = [n for n in op_types if n in seen and op_types[n] not in QDQ_OPS]
    float_nodes = [n for n in compute if n not in int8_nodes]
    convs = [n for n, op in op_types.items() if op in CONV_OPS]
    return EngineReport(
        layers=layers,
        conv_int8=sum(n in int8_nodes for n in convs),
        conv_total=len(convs),
        float_nodes=float_nodes,
        float_convs=[n for n in convs if n not in int8_nodes],
        layers_by_type=dict(sorted(Counter(layer.type for layer in layers).items())),
        source=source,
    )
