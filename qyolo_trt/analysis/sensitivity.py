"""Layer sensitivity: quantize one layer (or one shared-scale group) at a time, keep everything else float,
and measure the damage on the detector's raw outputs (head convs) against cached FP32 outputs.

A unit is a node that the full QDQ rewrite quantizes (it reads an activation's DequantizeLinear); Concat,
MaxPool and Resize nodes that share one scale through their tensors (e.g. SPPF's pools and its Concat) form
one unit. Each single-unit model is ``quantize(..., exclude=every other unit)``, so it is exactly what the
full rewrite would do to that unit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from ..calib.scales import ScalesFile
from ..data.feeds import count_images
from ..defaults import SENSITIVITY_METRICS, BASE_MODE
from ..errors import QyoloError
from ..eval.evaluate import head_outputs
from ..progress import progress
from ..qdq import quantize
from ..qdq.config import QuantizeConfig
from ..qdq.scale_groups import ScaleGroups
from ..fileio import finite
from .probe import Damage, Feeds, OutputProbe

GROUP_OPS = frozenset({"Concat", "MaxPool", "Resize"})  # inputs and output share one scale


@dataclass(frozen=True)
class Unit:
    """Nodes quantized together (by name), in graph order."""

    nodes: tuple[str, ...]
    ops: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.nodes[0] if len(self.nodes) == 1 else f"{self.nodes[-1]} (+{len(self.nodes) - 1})"

    def pattern(self) -> str:
        """A regex matching exactly this unit's node names (for ``quantize(exclude=...)``)."""
        return "^(?:" + "|".join(re.escape(n) for n in self.nodes) + ")$"


@dataclass
class LayerScore:
    """One unit's damage when it alone is quantized (``score``: by the chosen metric, larger = more fragile)."""

    unit: Unit
    score: float
    damage: Damage

    def to_dict(self) -> dict[str, Any]:
        d = self.damage
        return {"unit": self.unit.name, "nodes": list(self.unit.nodes), "ops": list(self.unit.ops), "score": finite(self.score),
                "rel_mse": finite(d.rel_mse), "cosine": finite(d.cosine), "sqnr_db": finite(d.sqnr_db)}  # fmt: skip


@dataclass
class SensitivityResult:
    """Units ranked by damage, most sensitive first."""

    metric: str
    outputs: list[str]
    num_images: int
    full: Damage  # every unit quantized at once
    scores: list[LayerScore] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "outputs": self.outputs,
            "num_images": self.num_images,
            "full_sqnr_db": finite(self.full.sqnr_db),
            "full_score": finite(self.full.score(self.metric)),
            "seconds": round(self.seconds, 2),
            "ranking": [{"rank": i + 1, **s.to_dict()} for i, s in enumerate(self.scores)],
        }


def quantized_units(qdq: onnx.ModelProto) -> list[Unit]:
    """The units of a QDQ model: nodes reading an activation DequantizeLinear, shared-scale chains merged."""
    inits = {t.name for t in qdq.graph.initializer}
    act_dq = {n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits}
    nodes = [n for n in qdq.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in act_dq for i in n.input)]
    if unnamed := sum(not n.name for n in nodes):
        raise QyoloError(f"{unnamed} quantized node(s) have no name; name every node to rank layers")
    dq_source = {n.output[0]: n.input[0] for n in qdq.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}

    def source(t: str) -> str:  # the float tensor behind a Q -> DQ chain
        while t in dq_source:
            t = dq_source[t]
        return t

    units = ScaleGroups()
    for n in nodes:
        if n.op_type in GROUP_OPS:
            for t in [*n.input[:1 if n.op_type == "Resize" else None], n.output[0]]:
                units.join(source(t), f"node:{n.name}")
    groups: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        groups.setdefault(units.find(f"node:{n.name}") if n.op_type in GROUP_OPS else f"node:{n.name}", []).append(n)
    return [Unit(tuple(n.name for n in ns), tuple(n.op_type for n in ns)) for ns in groups.values()]


def layer_sensitivity(
    model: onnx.ModelProto,
    scales: ScalesFile,
    feeds: Sequence[Feeds],
    config: QuantizeConfig | None = None,
    *,
    outputs: Sequence[str] | None = None,
    metric: str = SENSITIVITY_METRICS[0],
    desc: str = "sensitivity",
) -> SensitivityResult:
    """Rank the units of ``quantize(model, scales, config)`` (default: the ``BASE_MODE`` rewrite, symmetric) by the damage
    each does alone to ``outputs`` (default: the head convs' raw outputs, else the graph outputs) on ``feeds``."""
    if metric not in SENSITIVITY_METRICS:
        raise QyoloError(f"unknown sensitivity metric {metric!r}; choose from {', '.join(SENSITIVITY_METRICS)}")
    if not feeds:
        raise QyoloError("no images to measure sensitivity on")
    start = time.perf_counter()
    config = config or QuantizeConfig(mode=BASE_MODE)
    full = quantize(model, scales, config)
    units = quantized_units(full.model)
    probe = OutputProbe(model, feeds, list(outputs) if outputs else head_outputs(model))
    result = SensitivityResult(metric, probe.outputs, count_images(feeds), probe.damage(full.model))
    patterns = [u.pattern() for u in units]
    for i, unit in enumerate(progress(units, total=len(units), desc=desc, unit="layer")):
        single = quantize(model, scales, config, exclude=config.exclude + tuple(patterns[:i] + patterns[i + 1 :]), check_hash=False)
        damage = probe.damage(single.model)
        result.scores.append(LayerScore(unit, damage.score(metric), damage))
    result.scores.sort(key=lambda s: -s.score)
    result.seconds = time.perf_counter() - start
    return result
