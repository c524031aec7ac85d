"""Apply the placement rules to an FP32 ONNX model with a ScalesFile: exclusions, shared scales, report."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..calib.scales import ScalesFile, TensorRange
from ..defaults import BASE_MODE, DEFAULT_TARGET
from ..errors import QyoloError
from ..model import check_finite_weights, copy_model, model_hash
from ..normalize import normalize
from . import graph_ops  # noqa: F401 - registers graph.insert_qdq & co.
from .rules import PROFILES, RULES, GraphView, Head, Placement, Profile, find_head, first_conv
from .rules.shift import fold_shift, shift_pads
from .config import QuantizeConfig
from .scale_groups import ScaleGroups

REPORT_KEY = "qyolo_trt.report"
MIN_OPSET = 13


@dataclass
class QuantizeResult:
    model: onnx.ModelProto
    report: dict[str, Any]


Plan = list[tuple[gs.Node, Placement]]


def quantize(model: onnx.ModelProto, scales: ScalesFile, config: QuantizeConfig | None = None, **overrides: Any) -> QuantizeResult:
    """Rewrite ``model`` into a QDQ model using ``scales``, placed for ``config.target`` (its profile in
    ``rules.PROFILES``; TensorRT explicit quantization by default): the rewrite fields of ``config`` (``overrides``
    replace fields, e.g. ``mode="asymmetric"``; no config: ``BASE_MODE``, symmetric).

    ``mode``: "symmetric" (TensorRT), "shifted" (TensorRT; shifted-symmetric where exact), "asymmetric" (uint8 + zero
    points: ONNX Runtime / OpenVINO only). ``exclude``: regexes over node names kept float. ``keep_float``: "head"
    and/or "first-conv". ``allow_missing``: leave ops whose tensors have no usable scale in float (reported) instead of
    failing. An empty ``scales.model_hash`` (TensorRT caches) is not checked. ``weight_clip``: per-channel weight
    clip, "minmax" or "mse". The passes (fallback, low-bit, bias correction, fp16) are ``qyolo_trt.qdq.pipeline.run``'s.
    """
    config = config.replace(**overrides) if config is not None else QuantizeConfig(**{"mode": BASE_MODE, **overrides})
    mode, weight_clip, keep_float = config.mode, config.weight_clip, config.keep_float
    model = normalize(model)
    check_finite_weights(model)
    if config.check_hash and scales.model_hash and scales.model_hash != (h := model_hash(model)):
        raise QyoloError(
            f"scales ({scales.method}) were computed for model {scales.model_hash[:12]}, not this model ({h[:12]}); "
            "recalibrate this model, or skip the check (quantize --skip-hash-check)"
        )
    graph, head, plan, float_nodes = _placed(model, config)
    plan, params, missing = _resolve(plan, scales.tensors, config.allow_missing, float_nodes)
    shifted = _apply(graph, plan, params, mode, weight_clip, PROFILES[config.target].carried, config.shift_padded)
    graph.cleanup().toposort()
    if graph.opset < MIN_OPSET:
        graph.opset = MIN_OPSET
        graph.import_domains = [d for d in graph.import_domains or [] if d.domain not in ("", "ai.onnx")] + [onnx.helper.make_opsetid("", MIN_OPSET)]
    report = {
        "mode": mode,
        "weight_clip": weight_clip,
        "method": scales.method,
        "quantized": dict(sorted(Counter(n.op for n, _ in plan).items())),
        "float_nodes": float_nodes,
        "missing": missing,
        "shifted": shifted,
        "head": {"final_convs": [c.name for c in head.final_convs], "nodes": len(head.nodes)} if "head" in keep_float else None,
        "opset": graph.opset,
    }
    if config.target != DEFAULT_TARGET:  # a report without a target is a TensorRT placement (every report before targets)
        report["target"] = config.target
    return QuantizeResult(_export(graph, model, report), report)


def _placed(model: onnx.ModelProto, config: QuantizeConfig) -> tuple[gs.Graph, Head, Plan, list[dict[str, str]]]:
    """The graph of a normalized ``model``, its head, and where ``config``'s target wants quantizers."""
    graph = gs.import_onnx(copy_model(model))  # graphsurgeon's export renames the initializers it was given in place
    graph.toposort()
    head = find_head(graph)
    plan, float_nodes = _plan(graph, _float_reasons(graph, _compile(config.exclude), config.keep_float, head), PROFILES[config.target])
    return graph, head, plan, float_nodes


def uncalibrated(model: onnx.ModelProto, scales: ScalesFile, config: QuantizeConfig) -> list[str]:
    """Tensors the target's ``measured_ops`` quantize that ``scales`` has no range for (the calibration pass does not
    collect them, e.g. a conv's output before its SiLU), in graph order: ``pipeline.run`` measures them on images."""
    measured = PROFILES[config.target].measured_ops
    if not measured:
        return []
    _, _, plan, _ = _placed(normalize(model), config)
    names = [node.inputs[i].name for node, place in plan if node.op in measured for i in place.activations]
    return [n for n in dict.fromkeys(names) if n not in scales.tensors]


def _export(graph: gs.Graph, source: onnx.ModelProto, report: dict[str, Any]) -> onnx.ModelProto:
    """The ONNX model, with the source's metadata and the report under ``REPORT_KEY``."""
    out = gs.export_onnx(graph)
    for prop in source.metadata_props:
        if prop.key != REPORT_KEY:
            out.metadata_props.add(key=prop.key, value=prop.value)
    store_report(out, report)
    return out


def read_report(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The report ``store_report`` put in ``model``'s metadata (None: not a model we wrote)."""
    value = next((p.value for p in model.metadata_props if p.key == REPORT_KEY), None)
    return None if value is None else json.loads(value)


def store_report(model: onnx.ModelProto, report: dict[str, Any]) -> None:
    """Store ``report`` in ``model``'s metadata under ``REPORT_KEY``, replacing any report stored there."""
    props = model.metadata_props
    for i in reversed(range(len(props))):
        if props[i].key == REPORT_KEY:
            del props[i]
    props.add(key=REPORT_KEY, value=json.dumps(report, sort_keys=True))


def _plan(graph: gs.Graph, floats: dict[int, str], profile: Profile) -> tuple[Plan, list[dict[str, str]]]:
    """Ask each node's rule (those the profile applies) where it wants quantizers; nodes kept float go to the report instead."""
    view = GraphView(graph, frozenset(floats))
    plan: Plan = []
    float_nodes: list[dict[str, str]] = []
    for node in graph.nodes:
        place = RULES[node.op](node, view) if node.op in RULES and node.op in profile.ops else None
        if place is not None and id(node) in floats:
            float_nodes.append(_entry(node, floats[id(node)]))
        elif place is not None:
            plan.append((node, place))
    return plan, float_nodes


def _compile(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    try:
        return [re.compile(p) for p in patterns]
    except re.error as exc:
        raise QyoloError(f"bad --exclude regex {exc.pattern!r}: {exc}") from None


def _float_reasons(graph: gs.Graph, exclude: list[re.Pattern[str]], keep_float: tuple[str, ...], head: Head) -> dict[int, str]:
    """node id -> why it stays float (user regex first, then first conv, then head)."""
    reasons: dict[int, str] = {}
    if "head" in keep_float:
        reasons.update({id(n): "head" for n in head.nodes})
    first = first_conv(graph) if "first-conv" in keep_float else None
    if first is not None:
        reasons[id(first)] = "first-conv"
    for node in graph.nodes:
        if hit := next((p.pattern for p in exclude if p.search(node.name or "")), None):
            reasons[id(node)] = f"exclude:{hit}"
    return reasons


def _entry(node: gs.Node, reason: str) -> dict[str, str]:
    return {"node": node.name, "op": node.op, "reason": reason}


def _groups(plan: Plan) -> dict[str, list[str]]:
    """tensor name -> names of the terminal outputs of its shared-scale group (only for grouped tensors)."""
    groups = ScaleGroups()
    fed: set[str] = set()
    for node, place in plan:
        if place.group:
            for i in place.activations:
                fed.add(node.inputs[i].name)
                groups.join(node.inputs[i].name, node.outputs[0].name)
    terminals = {root: sorted(m for m in ms if m not in fed) for root, ms in groups.members().items()}
    return {name: terminals[groups.find(name)] for name in groups.parent}


def _usable(r: TensorRange | None) -> bool:
    return r is not None and r.scale is not None and math.isfinite(r.scale) and r.scale > 0


def _resolve(plan: Plan, tensors: dict[str, TensorRange], allow_missing: bool, float_nodes: list[dict[str, str]]):
    """Give every quantized tensor its range (a group takes its output's); drop or reject nodes without one.

    Returns (plan, tensor name -> range, sorted missing/degenerate tensor names).
    """
    all_missing: set[str] = set()
    while True:
        groups = _groups(plan)
        params: dict[str, TensorRange] = {}
        bad: dict[int, list[str]] = {}
        for node, place in plan:
            names = [node.inputs[i].name for i in place.activations] + ([node.outputs[0].name] if place.group else [])
            for name in names:
                sources = groups.get(name, [name])
                usable = [tensors[s] for s in sources if _usable(tensors.get(s))]
                if len(usable) == len(sources):
                    params[name] = max(usable, key=lambda r: r.scale)
                else:
                    bad.setdefault(id(node), []).extend(s for s in sources if not _usable(tensors.get(s)))
        if not bad:
            return plan, params, sorted(all_missing)
        missing = sorted({s for v in bad.values() for s in v})
        if not allow_missing:
            absent = [s for s in missing if s not in tensors]
            degenerate = [s for s in missing if s in tensors]
            parts = [f"no scale for {len(absent)} tensor(s): {', '.join(absent)}"] if absent else []
            parts += [f"degenerate scale for {len(degenerate)} tensor(s): {', '.join(degenerate)}"] if degenerate else []
            raise QyoloError(f"scales do not cover this model: {'; '.join(parts)} (recalibrate, or allow missing to keep those ops float)")
        all_missing.update(missing)
        float_nodes.extend(_entry(n, "missing scale: " + ", ".join(sorted(set(bad[id(n)])))) for n, _ in plan if id(n) in bad)
        plan = [(n, p) for n, p in plan if id(n) not in bad]


def _apply(graph: gs.Graph, plan: Plan, params: dict[str, TensorRange], mode: str, weight_clip: str, carried: frozenset[str],
           shift_padded: bool) -> list[str]:  # fmt: skip
    """Insert activation Q/DQ (one pair per tensor, shared by its quantized consumers; none on the output of a grouped
    ``carried`` op, which stays on its inputs' grid), then weights. Returns shifted tensors (``shift_padded``: also
    those read by padded convs, not the graph input: torchq keeps the image input's step fixed)."""
    by_name = graph.tensors()
    quantized = {id(n) for n, _ in plan}
    on_grid = {n.outputs[0].name for n, p in plan if p.group and n.op in carried}
    dq: dict[str, gs.Variable] = {}
    shifted: list[str] = []
    for node, place in plan:
        for i in place.activations:
            t = node.inputs[i]
            if t.name in on_grid:
                continue
            if t.name not in dq:
                consumers = list(by_name[t.name].outputs)
                pads = shift_pads(consumers, params[t.name], shift_padded and t not in graph.inputs) if mode == "shifted" else None
                if pads is not None:
                    shifted.append(t.name)
                    dq[t.name] = _shifted_qdq(graph, t, params[t.name], [c for c in consumers if id(c) in quantized], weight_clip, pads)
                else:
                    dq[t.name] = _qdq(graph, t, params[t.name], mode)
            node.inputs[i] = dq[t.name]
    weights: dict[str, gs.Tensor] = {}
    for node, place in plan:
        for i, axis in place.weights:
            name = node.inputs[i].name
            if name not in weights:
                graph.quantize_weight_per_channel(node, i, axis, weight_clip)
                weights[name] = node.inputs[i]
            node.inputs[i] = weights[name]
    return sorted(shifted)


def _qdq(graph: gs.Graph, t: gs.Tensor, rng: TensorRange, mode: str) -> gs.Variable:
    if mode == "asymmetric":
        scale, zero_point = rng.asymmetric()
        return graph.insert_qdq(t, scale, zero_point, np.uint8)
    return graph.insert_qdq(t, rng.scale)


def _shifted_qdq(graph: gs.Graph, t: gs.Tensor, rng: TensorRange, convs: list[gs.Node], weight_clip: str,
                 pads: tuple[int, ...]) -> gs.Variable:  # fmt: skip
    """``t - shift`` -> symmetric Q/DQ with ``shift_scale``; the shift is folded into the convs' biases (before
    their weights are quantized). ``pads``: the convs' common zero padding, moved into a ``Pad`` of ``t`` first."""
    for conv in convs:
        fold_shift(graph, conv, rng.shift, weight_clip)
        if pads:
            conv.attrs["pads"] = [0, 0, 0, 0]
    source = graph.insert_pad(t, pads) if pads else t
    return graph.insert_qdq(graph.insert_shift(source, rng.shift), rng.shift_scale)
