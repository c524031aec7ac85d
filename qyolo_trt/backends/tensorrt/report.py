"""The build report: which ONNX nodes fused into which engine layer, and in which precision.

Two sources, one result (``EngineReport``):
- the builder's VERBOSE log with ``ProfilingVerbosity.DETAILED`` (TensorRT-RTX, no GPU needed): one line per
  layer, ``Name: ..., LayerType: ..., Inputs: [ { ... Datatype: Int8 ... } ], Constants: [...], Outputs: [...],
  ..., Metadata: [ONNX Layer: /model.0/conv/Conv][ONNX Layer: ...]``;
- ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` (standard TensorRT 10/11, needs a
  deserialised engine): ``{"Layers": [{"Name", "LayerType", "Inputs": [{"Format/Datatype" | "Datatype"}], ...,
  "Metadata"}]}``.
A Conv "runs INT8" when an engine layer that implements it reads an Int8 activation.
"""

from __future__ import annotations

import json
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

    @property
    def reads_int8(self) -> bool:
        return "Int8" in self.input_dtypes


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_layers": len(self.layers),
            "layers_by_type": self.layers_by_type,
            "output_dtypes": self.output_dtypes,
            "conv_int8": self.conv_int8,
            "conv_total": self.conv_total,
            "float_convs": self.float_convs,
            "float_nodes": self.float_nodes,
            "source": self.source,
            "layers": [asdict(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineReport":
        layers = [LayerInfo(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}) for d in data.get("layers", [])]
        return cls(
            layers=layers,
            conv_int8=int(data["conv_int8"]),
            conv_total=int(data["conv_total"]),
            float_nodes=list(data.get("float_nodes", [])),
            float_convs=list(data.get("float_convs", [])),
            layers_by_type=dict(data.get("layers_by_type", {})),
            source=str(data.get("source", "")),
        )


# the whole value ("Int8", or "Thirty-two wide channel vectorized row major Int8 format" after Format/Datatype), not its first word
_DATATYPE = re.compile(r"Datatype: ([^,}\]]+)")


def canonical_dtype(text: str) -> str:
    """``"Int8"``, ``"Thirty-two wide channel vectorized row major Int8 format."``, ``"FP16"`` -> canonical name."""
    low = text.lower()
    return next((name for pattern, name in _DTYPES if re.search(pattern, low)), text.strip() or "?")


def parse_layer_log(messages: Iterable[str]) -> list[LayerInfo]:
    """Layers from the builder's DETAILED VERBOSE log (messages may span several lines); duplicates dropped."""
    layers: dict[str, LayerInfo] = {}
    for line in (ln for msg in messages for ln in msg.splitlines()):
        m = _LINE.match(line)
        if not m or m.group("name") in layers:
            continue
        out = _OUTPUTS.search(line, m.end("inputs"))
        meta = line.rpartition("Metadata:")[2]
        layers[m.group("name")] = LayerInfo(
            name=m.group("name"),
            type=m.group("type").strip(),
            input_dtypes=tuple(canonical_dtype(d) for d in _DATATYPE.findall(m.group("inputs"))),
            output_dtypes=tuple(canonical_dtype(d) for d in _DATATYPE.findall(out.group("outputs") if out else "")),
            onnx_nodes=tuple(_ONNX_LAYER.findall(meta)),
        )
    return list(layers.values())


def _tensor_dtype(tensor: Mapping[str, Any]) -> str:
    raw = tensor.get("Datatype") or tensor.get("DataType") or tensor.get("Format/Datatype") or ""
    return canonical_dtype(str(raw))


def parse_inspector_json(text: str) -> list[LayerInfo]:
    """Layers from ``IEngineInspector`` JSON (TensorRT 10 ``Bindings`` or 11 ``I/O Tensors`` schema alike)."""
    data = json.loads(text)
    layers: dict[str, LayerInfo] = {}
    for layer in data.get("Layers", []):
        if not isinstance(layer, dict) or layer.get("Name") in layers:
            continue  # LAYER_NAMES_ONLY gives bare strings: nothing to report
        layers[layer["Name"]] = LayerInfo(
            name=layer["Name"],
            type=str(layer.get("LayerType", "?")),
            input_dtypes=tuple(_tensor_dtype(t) for t in layer.get("Inputs", [])),
            output_dtypes=tuple(_tensor_dtype(t) for t in layer.get("Outputs", [])),
            onnx_nodes=tuple(_ONNX_LAYER.findall(str(layer.get("Metadata", "")))),
        )
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
