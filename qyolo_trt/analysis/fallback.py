"""Automatic float fallback: leave the most sensitive units float, a fixed number (``k``) or as many as needed
for the head-output SQNR against FP32 to reach a budget (``budget_db``, measured on the sensitivity images).

The budget search assumes that keeping more of the ranked units float never lowers the SQNR (true in practice,
not guaranteed): it doubles k until the budget is met, then bisects; every k it measured is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import onnx

from ..calib.scales import ScalesFile
from ..errors import QyoloError
from ..qdq import QuantizeResult, quantize
from ..qdq.quantize import store_report
from .probe import Feeds, OutputProbe, finite
from .sensitivity import LayerScore, SensitivityResult, layer_sensitivity


def auto_fallback(
    model: onnx.ModelProto,
    scales: ScalesFile,
    feeds: Sequence[Feeds],
    *,
    k: int | None = None,
    budget_db: float | None = None,
    metric: str = "mse",
    ranking: SensitivityResult | None = None,
    **options: Any,
) -> QuantizeResult:
    """``quantize`` with the ``k`` most sensitive units float (or the fewest reaching ``budget_db``); the report's
    ``fallback`` entry lists them with their sensitivity, and their ``float_nodes`` reason says why.
    ``options``: ``quantize``'s keyword arguments (mode, exclude, keep_float, allow_missing, check_hash)."""
    if (k is None) == (budget_db is None):
        raise QyoloError("give exactly one of a fallback count (k) or an SQNR budget (dB)")
    if k is not None and k < 0:
        raise QyoloError(f"--auto-fallback must be >= 0, got {k}")
    ranking = ranking or layer_sensitivity(model, scales, feeds, metric=metric, **options)
    scores = ranking.scores
    base = {**options, "exclude": tuple(options.get("exclude", ())), "check_hash": False}

    def build(n: int) -> QuantizeResult:
        return quantize(model, scales, **{**base, "exclude": base["exclude"] + tuple(s.unit.pattern() for s in scores[:n])})

    probe = OutputProbe(model, feeds, ranking.outputs)
    trials: dict[int, float] = {}

    def sqnr(n: int) -> float:
        if n not in trials:
            trials[n] = probe.damage(build(n).model).sqnr_db
        return trials[n]

    chosen = min(k, len(scores)) if k is not None else smallest_reaching(sqnr, budget_db, len(scores))
    result = build(chosen)
    _annotate(result, scores[:chosen], ranking, {
        "policy": "top-k" if k is not None else "sqnr-budget",
        "k": chosen,
        "budget_db": budget_db,
        "sqnr_db": finite(sqnr(chosen)),
        "trials": [{"k": n, "sqnr_db": finite(db)} for n, db in sorted(trials.items())],
    })  # fmt: skip
    return result


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


def _annotate(result: QuantizeResult, kept: list[LayerScore], ranking: SensitivityResult, summary: dict[str, Any]) -> None:
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
