"""An ONNX graph (FP32 or QDQ) as a torch module that runs any subgraph: given tensors in, requested tensors out.

Every node becomes a ``Step`` in the graph's (topological) order. Quantization becomes modules a caller can swap:

- an activation QuantizeLinear -> DequantizeLinear pair (and the b-bit Clip right after it, ``analysis.lowbit``)
  is one ``ActQuant`` step, keyed by the tensor it quantizes (``graph.acts``);
- a DequantizeLinear of an integer initializer is a weight step (``FixedWeight`` of the stored integers), keyed
  by the weight's name, the DQ output (``graph.weights``; ``graph.set_weight(name, AdaRoundWeight(...))``);
- the float bias of a conv with a quantized weight is a ``ConvBias`` step computed from that weight (the shift of
  a shifted-symmetric input stays folded when the weight changes), keyed by the conv's name (``graph.biases``).

``graph({"images": x})`` runs the whole graph; ``graph(values, outputs=[...])`` runs only the steps between the
given tensors and the requested ones (a block of the network).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import QyoloError
from ..lazy import lazy_import
from .ops import OPS, attributes
from .quantizers import ActQuant, ConvBias, FixedWeight

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")
nn = torch.nn

INTEGER_TYPES = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4)
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class Step:
    """One node: an ONNX op from ``ops.OPS``, or ``ActQuant`` / ``Weight`` / ``Bias`` running module ``key``."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    @property
    def chain(self) -> bool:
        """An activation quantizer, or the shift ``Sub`` (and the zero ``Pad`` before it, qdq/rules/shift.py) before one:
        the path a tensor takes into its consumers."""
        return (self.op == "ActQuant" or (self.op == "Sub" and self.inputs[1] == f"{self.inputs[0]}_shift")
                or (self.op == "Pad" and self.outputs[0] == f"{self.inputs[0]}_padded"))


@dataclass(frozen=True)
class WeightSource:
    """Where a quantized weight lives in the ONNX model."""

    integers: str  # the integer initializer (DequantizeLinear input 0)
    scale: str
    axis: int


@dataclass(frozen=True)
class BiasSource:
    """A quantized conv's bias: its initializer and its weight (the DQ output)."""

    initializer: str
    weight: str


class TorchGraph(nn.Module):
    """Differentiable execution of an ONNX model (see the module docstring)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        g = model.graph
        self.input_names = [i.name for i in g.input]
        self.output_names = [o.name for o in g.output]
        inits = {t.name: t for t in g.initializer}
        self.consts: dict[str, torch.Tensor] = {n: _tensor(t) for n, t in inits.items() if t.data_type not in INTEGER_TYPES}
        self.acts, self.weights, self.biases = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        self.act_keys: dict[str, str] = {}  # quantized tensor (Q input) -> key
        self.weight_keys: dict[str, str] = {}  # weight name (DQ output) -> key
        self.bias_keys: dict[str, str] = {}  # conv node name -> key
        self.weight_sources: dict[str, WeightSource] = {}
        self.bias_sources: dict[str, BiasSource] = {}
        self.steps: list[Step] = []
        self._plans: dict[tuple, list[tuple[Step, list[str]]]] = {}
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in g.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        outputs = set(self.output_names)
        skip: set[int] = set()
        for node in g.node:
            if id(node) in skip:
                continue
            if node.op_type == "Constant":
                self.consts[node.output[0]] = attributes(node)["value"]
            elif node.op_type == "DequantizeLinear" and node.input[0] in inits:
                self._add_weight(node, inits)
            elif node.op_type == "QuantizeLinear":
                skip.update(self._add_act(node, inits, consumers, outputs))
            elif node.op_type in QUANT_OPS:
                raise QyoloError(f"torchq: {node.op_type} {node.name!r} is not part of a Q -> DQ pair or a weight DQ")
            elif node.op_type not in OPS:
                raise QyoloError(f"torchq: op {node.op_type} ({node.name!r}) is not supported")
            else:
                self._add_node(node)

    # --- building -------------------------------------------------------------------------------------------

    def _add_weight(self, dq: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> None:
        q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int64)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        zero = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 and dq.input[2] else np.zeros(1)
        if np.any(zero != 0) or scale.ndim != 1:
            raise QyoloError(f"torchq: weight {dq.output[0]!r} is not symmetric per-channel (zero point 0, 1-D scale)")
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % q.ndim
        key = f"w{len(self.weight_keys)}"
        self.weights[key] = FixedWeight(q, scale, axis)
        self.weight_keys[dq.output[0]] = key
        self.weight_sources[dq.output[0]] = WeightSource(dq.input[0], dq.input[1], axis)
        self.steps.append(Step(dq.name, "Weight", [], [dq.output[0]], key=key))

    def _add_act(self, q: onnx.NodeProto, inits: dict, consumers: dict, outputs: set[str]) -> list[int]:
        """One ActQuant step for Q -> DQ (-> constant Clip); returns the ids of the nodes it absorbed."""
        dqs = consumers.get(q.output[0], [])
        if len(dqs) != 1 or dqs[0].op_type != "DequantizeLinear" or list(dqs[0].input[1:]) != list(q.input[1:]):
            raise QyoloError(f"torchq: QuantizeLinear {q.name!r} is not followed by one DequantizeLinear with its parameters")
        dq, scale = dqs[0], float(numpy_helper.to_array(inits[q.input[1]]))
        zp_init = inits.get(q.input[2]) if len(q.input) > 2 else None
        zp = int(numpy_helper.to_array(zp_init)) if zp_init is not None else 0
        signed = zp_init is None or zp_init.data_type == onnx.TensorProto.INT8
        qmin, qmax = (-128, 127) if signed else (0, 255)
        absorbed, out = [id(dq)], dq.output[0]
        clip = consumers.get(out, [])
        if len(clip) == 1 and clip[0].op_type == "Clip" and out not in outputs and all(n in self.consts for n in clip[0].input[1:3]):
            lo, hi = (float(self.consts[n]) for n in clip[0].input[1:3])
            qmin, qmax = max(qmin, round(lo / scale) + zp), min(qmax, round(hi / scale) + zp)
            absorbed.append(id(clip[0]))
            out = clip[0].output[0]
        key = f"a{len(self.act_keys)}"
        self.acts[key] = ActQuant(scale, zp, qmin, qmax)
        self.act_keys[q.input[0]] = key
        self.steps.append(Step(q.name, "ActQuant", [q.input[0]], [out], key=key))
        return absorbed

    def _add_node(self, node: onnx.NodeProto) -> None:
        inputs = list(node.input)
        if node.op_type == "Conv" and inputs[1] in self.weight_keys and len(inputs) > 2 and inputs[2] in self.consts:
            weight = self.weights[self.weight_keys[inputs[1]]]().detach().numpy()
            key = f"b{len(self.bias_keys)}"
            self.biases[key] = ConvBias(self.consts[inputs[2]].numpy(), weight, self._shift_of(inputs[0]))
            self.bias_keys[node.name] = key
            self.bias_sources[node.name] = BiasSource(inputs[2], inputs[1])
            inputs[2] = f"{node.name}::bias"
            self.steps.append(Step(f"{node.name}::bias", "Bias", [inputs[1]], [inputs[2]], key=key))
        self.steps.append(Step(node.name, node.op_type, inputs, list(node.output), attributes(node)))

    def _shift_of(self, tensor: str) -> float:
        """The shift a conv input went through (``Sub(x, x_shift)`` before its Q/DQ), else 0."""
        act = next((s for s in reversed(self.steps) if tensor in s.outputs), None)
        sub = next((s for s in reversed(self.steps) if act is not None and act.op == "ActQuant" and act.inputs[0] in s.outputs), None)
        return float(self.consts[sub.inputs[1]]) if sub is not None and sub.chain else 0.0

    # --- quantizers ----------------------------------------------------------------------------------------

    def act(self, tensor: str) -> nn.Module:
        """The activation quantizer of ``tensor`` (the QuantizeLinear input)."""
        return self.acts[self.act_keys[tensor]]

    def weight(self, name: str) -> nn.Module:
        return self.weights[self.weight_keys[name]]

    def set_weight(self, name: str, module: nn.Module) -> None:
        """Swap the quantizer of weight ``name`` (a module whose ``forward()`` returns the dequantized weight)."""
        self.weights[self.weight_keys[name]] = module

    def bias(self, conv: str) -> ConvBias:
        return self.biases[self.bias_keys[conv]]

    def set_quantization(self, enabled: bool) -> None:
        """Turn every activation quantizer on or off (weights stay as their quantizers give them)."""
        for module in self.acts.values():
            module.enabled = enabled

    # --- execution -----------------------------------------------------------------------------------------

    def forward(self, values: Mapping[str, torch.Tensor], outputs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the steps that compute ``outputs`` (default: the graph outputs) from ``values`` and the constants."""
        outputs = tuple(outputs or self.output_names)
        env = dict(values)
        for step, free in self.plan(tuple(sorted(values)), outputs):
            args = [env[n] if n in env else self.consts.get(n) for n in step.inputs]
            env.update(zip(step.outputs, self._run(step, args)))
            for name in free:
                env.pop(name, None)
        return {n: env[n] if n in env else self.consts[n] for n in outputs}

    def _run(self, step: Step, args: list) -> list[torch.Tensor]:
        if step.op == "ActQuant":
            return [self.acts[step.key](args[0])]
        if step.op == "Weight":
            return [self.weights[step.key]()]
        if step.op == "Bias":
            return [self.biases[step.key](args[0])]
        return OPS[step.op](args, step.attrs)

    def plan(self, given: tuple[str, ...], outputs: tuple[str, ...]) -> list[tuple[Step, list[str]]]:
        """The steps (in order) that compute ``outputs`` from ``given``, each with the tensors to free after it."""
        cache_key = (given, outputs)
        if cache_key not in self._plans:
            self._plans[cache_key] = self._make_plan(set(given), outputs)
        return self._plans[cache_key]

    def _make_plan(self, given: set[str], outputs: tuple[str, ...]) -> list[tuple[Step, list[str]]]:
        producer = {o: i for i, s in enumerate(self.steps) for o in s.outputs}
        chosen: set[int] = set()
        todo = [n for n in outputs if n not in given]
        while todo:
            name = todo.pop()
            if name in given or name in self.consts or name == "":
                continue
            if name not in producer:
                raise QyoloError(f"torchq: tensor {name!r} cannot be computed from the given inputs")
            i = producer[name]
            if i not in chosen:
                chosen.add(i)
                todo.extend(self.steps[i].inputs)
        order = sorted(chosen)
        last: dict[str, int] = {}
        for pos, i in enumerate(order):
            for name in self.steps[i].inputs:
                last[name] = pos
        keep = set(outputs)
        frees: list[list[str]] = [[] for _ in order]
        for name, pos in last.items():
            if name not in keep and name not in self.consts:
                frees[pos].append(name)
        return [(self.steps[i], frees[pos]) for pos, i in enumerate(order)]


def _tensor(t: onnx.TensorProto) -> torch.Tensor:
    return torch.from_numpy(np.array(numpy_helper.to_array(t)))
