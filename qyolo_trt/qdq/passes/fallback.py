"""Automatic float fallback: leave the most sensitive units float, a fixed number (``fallback_k``) or as many as
needed for the head-output SQNR against FP32 to reach a budget (``fallback_db``, measured on the fallback images).

The ranking is ``analysis.sensitivity`` of the run's rewrite, supplied by the context. The budget search assumes
that keeping more of the ranked units float never lowers the SQNR (true in practice, not guaranteed): it doubles k
until the budget is met, then bisects; every k it measured is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import onnx

from ...fileio import finite
from ..config import QuantizeConfig
from ..quantize import QuantizeResult, store_report
from .base import PassContext, register


@register(order=10)
class FallbackPass:
    name = "fallback"

    def enabled(self, config: QuantizeConfig) -> bool:
        return config.fallback

    def apply(self, result: QuantizeResult, fp32: onnx.ModelProto, ctx: PassContext) -> QuantizeResult:
        """The rewrite again with the chosen units excluded (float); the report says which and why."""
        config = ctx.config
        feeds = ctx.feeds(config.fallback_images, config.fallback_num_images)
        ranking = ctx.rank(feeds)
        scores = ranking.scores
        base = config.replace(check_hash=False)

        def build(n: int) -> QuantizeResult:
            return ctx.rewrite(base.replace(exclude=base.exclude + tuple(s.unit.pattern() for s in scores[:n])))

        probe = ctx.probe(feeds, ranking.outputs)
        trials: dict[int, float] = {}

        def sqnr(n: int) -> float:
            if n not in trials:
                trials[n] = probe.damage(build(n).model).sqnr_db
            return trials[n]

        k = config.fallback_k
        chosen = min(k, len(scores)) if k is not None else smallest_reaching(sqnr, config.fallback_db, len(scores))
        out = build(chosen)
        _annotate(out, scores[:chosen], ranking, {
            "policy": "top-k" if k is not None else "sqnr-budget",
            "k": chosen,
            "budget_db": config.fallback_db,
            "sqnr_db": finite(sqnr(chosen)),
            "trials": [{"k": n, "sqnr_db": finite(db)} for n, db in sorted(trials.items())],
        })  # fmt: skip
        return out


def smallest_reaching(sqnr: Callable[[int], float], budget_db: float, n_max: int) -> int:
    """The smallest k in [0, n_max] with ``sqnr(k) >= budget_db`` (doubling, then bisection), else n_max."""
    if sqnr(0) >= budget_db:
        return 0
    lo, hi = 0, 1
    while hi < n_max and sqnr(hi) < budget_db:
        lo, hi = hi, min(2 * hi, n_max)
    if hi >= n_max and sqnr(n_max) < budget_db:
        return n_max
    while hi - lo > 1:  # sqnr(lo) < budget <= sqnr(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if sqnr(mid) < budget_db else (lo, mid)
    return hi


def _annotate(result: QuantizeResult, kept: list[Any], ranking: Any, summary: dict[str, Any]) -> None:
    """Say which units stayed float and why, in the report and in the model's stored report."""
    why = {s.unit.pattern(): (rank, s) for rank, s in enumerate(kept, 1)}
    for entry in result.report["float_nodes"]:
        hit = why.get(entry["reason"].removeprefix("exclude:"))
        if hit:
            rank, s = hit
            entry["reason"] = f"fallback: sensitivity rank {rank} ({ranking.metric} {s.score:.3g}, {_db(s.damage.sqnr_db)} alone)"
    result.report["fallback"] = {
        **summary,
        "metric": ranking.metric,
        "outputs": ranking.outputs,
        "num_images": ranking.num_images,
        "full_sqnr_db": finite(ranking.full.sqnr_db),
        "layers": [{"rank": i, **s.to_dict()} for i, s in enumerate(kept, 1)],
    }
    store_report(result.model, result.report)


def _db(v: float) -> str:
    return f"{v:.1f} dB" if math.isfinite(v) else "lossless"
