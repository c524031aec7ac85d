"""Learnable activation step sizes (LSQ, Esser et al. 2020) for a ``TorchGraph``, tied where the placement shares one
scale: the inputs and output of a Concat / MaxPool / Resize (``qdq.quantize``) keep one Q/DQ scale, so they learn one
parameter and ``writeback.write_act_scales`` writes one value. The graph input's group keeps its step: UH's step puts
the pixels ``k / 255`` on rounding ties, so any change re-rounds half of them at once."""

from __future__ import annotations

from ..lazy import lazy_import
from ..qdq.scale_groups import ScaleGroups
from .graph import TorchGraph
from .quantizers import ActQuant

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")
nn = torch.nn

GROUP_OPS = frozenset({"Concat", "MaxPool", "Resize"})  # inputs and output share one scale (qdq.quantize)


def learnable_scales(graph: TorchGraph) -> dict[str, nn.Parameter]:
    """Swap every activation quantizer of ``graph`` but the graph input's group for one with a learnable step size
    (its current value); returns quantizer key -> its parameter (quantizers that share a scale share the parameter)."""
    groups = _scale_groups(graph)
    acts = {s.key: groups.find(s.outputs[0]) for s in graph.steps if s.op == "ActQuant"}
    fixed = {acts[s.key] for s in graph.steps if s.op == "ActQuant" and s.inputs[0] in graph.input_names}
    shared: dict[tuple, nn.Parameter] = {}
    params: dict[str, nn.Parameter] = {}
    for key, old in list(graph.acts.items()):
        if acts[key] in fixed:
            continue
        new = ActQuant(float(old.scale), old.zero_point, old.qmin, old.qmax, learn_scale=True)
        new.scale = params[key] = shared.setdefault((acts[key], float(old.scale), old.zero_point), new.scale)
        graph.acts[key] = new
    return params


def _scale_groups(graph: TorchGraph) -> ScaleGroups:
    """The placement's shared-scale groups as sets of tensor names, as ``qdq.quantize`` forms them: a group op's data
    inputs with its output, and a quantizer's input with its output (one Q/DQ pair sits on one tensor), so a group
    reaches through ops that carry it without a Q/DQ after them (OpenVINO's Concat / MaxPool)."""
    groups = ScaleGroups()
    for step in graph.steps:
        if step.op in GROUP_OPS:
            for tensor in step.inputs[: 1 if step.op == "Resize" else None]:
                groups.join(tensor, step.outputs[0])
        elif step.op == "ActQuant":
            groups.join(step.inputs[0], step.outputs[0])
    return groups
