"""Extra `compare` rows: low-bit (W{w}A{a}) simulations, automatic float fallback and reconstruction, as
``eval.compare.Variant``s.
Each row is one ``qdq.pipeline.run`` with its config; the fallback rows share one sensitivity ranking."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import onnx

from ..calib import calibrate
from ..data.feeds import load_feeds
from ..defaults import RECONSTRUCT_ITERS, SENSITIVITY_IMAGES, SENSITIVITY_METRICS
from ..eval.compare import TARGETS, Variant, plan
from ..qdq.config import QuantizeConfig
from ..qdq.pipeline import run
from .sensitivity import layer_sensitivity

VariantsFn = Callable[[onnx.ModelProto, Sequence[Path]], list[Variant]]
Width = int | tuple[int, int]  # b (W{b}A{b}) or (weight bits, activation bits)


def lowbit_rows(methods: Sequence[str], modes: Sequence[str], widths: Sequence[Width]) -> VariantsFn:
    """W{w}A{a} rows for every (method, mode) of the plan except shifted (one calibration pass per activation width)."""

    def rows(model: onnx.ModelProto, calib: Sequence[Path]) -> list[Variant]:
        out = []
        pairs = [(m, mode) for m, mode in plan(methods, modes) if mode != "shifted"]
        calibrated = _calibrations(model, calib, list(dict.fromkeys(m for m, _ in pairs)))
        for w, a in map(_pair, widths):
            scales, seconds = calibrated(a)
            for method, mode in pairs:
                q = run(model, scales[method], QuantizeConfig(mode=mode, weight_bits=w, act_bits=a)).model
                info = {"method": method, "mode": mode, "weight_bits": w, "act_bits": a}
                out.append(Variant(f"{method}/{mode} W{w}A{a}", q, TARGETS[mode], seconds, info))
        return out

    return rows


def fallback_rows(method: str, ks: Sequence[int], num_images: int = SENSITIVITY_IMAGES, metric: str = SENSITIVITY_METRICS[0]) -> VariantsFn:
    """``method``/symmetric rows with the k most sensitive units float, for each k in ``ks``; the sensitivity is
    measured once on the first ``num_images`` calibration images (never on the evaluation images)."""

    def rows(model: onnx.ModelProto, calib: Sequence[Path]) -> list[Variant]:
        t0 = time.perf_counter()
        scales = calibrate(model, list(calib), methods=(method,), progress_desc="calibrate")[method]
        config = QuantizeConfig(mode="symmetric", fallback_images=list(calib), fallback_num_images=num_images)
        ranking = layer_sensitivity(model, scales, load_feeds(model, list(calib), num_images), config, metric=metric)
        seconds = time.perf_counter() - t0
        out = []
        for k in ks:
            q = run(model, scales, config.replace(fallback_k=k), ranking=ranking)
            fb = q.report["fallback"]
            info = {"method": method, "mode": "symmetric", "fallback_k": fb["k"], "fallback_units": [u["unit"] for u in fb["layers"]],
                    "fallback_calib_sqnr_db": fb["sqnr_db"]}  # fmt: skip
            out.append(Variant(f"{method}/symmetric fallback {k}", q.model, TARGETS["symmetric"], seconds, info))
        return out

    return rows


def reconstruct_rows(widths: Sequence[Width], iters: int = RECONSTRUCT_ITERS) -> VariantsFn:
    """UH rows with reconstruction on the calibration images (``+rc``): shifted at W8A8, W{w}A{a} symmetric below."""

    def rows(model: onnx.ModelProto, calib: Sequence[Path]) -> list[Variant]:
        out = []
        calibrated = _calibrations(model, calib, ["uh"])
        for w, a in map(_pair, widths):
            scales, seconds = calibrated(a)
            t0 = time.perf_counter()
            config = QuantizeConfig(weight_bits=w, act_bits=a, reconstruct=True, reconstruct_images=list(calib),
                                    reconstruct_num_images=len(calib), reconstruct_iters=iters)
            q = run(model, scales["uh"], config)
            label = f"uh/{config.mode}+rc" + (f" W{w}A{a}" if config.lowbit else "")
            info = {"method": "uh", "mode": config.mode, "weight_bits": w, "act_bits": a, "reconstruction": q.report["reconstruction"]}
            out.append(Variant(label, q.model, TARGETS[config.mode], seconds + time.perf_counter() - t0, info))
        return out

    return rows


def _pair(width: Width) -> tuple[int, int]:
    """(weight bits, activation bits) of a width: ``b`` is W{b}A{b}."""
    return (width, width) if isinstance(width, int) else width


def _calibrations(model: onnx.ModelProto, calib: Sequence[Path], methods: list[str]) -> Callable[[int], tuple[dict, float]]:
    """``act_bits -> (scales per method, seconds)``: one calibration pass per activation width, on first use."""
    done: dict[int, tuple[dict, float]] = {}

    def calibrated(act_bits: int) -> tuple[dict, float]:
        if act_bits not in done:
            t0 = time.perf_counter()
            scales = calibrate(model, list(calib), methods=methods, bits=act_bits, progress_desc=f"calibrate {act_bits}-bit")
            done[act_bits] = scales, time.perf_counter() - t0
        return done[act_bits]

    return calibrated


def chained(*fns: VariantsFn) -> VariantsFn:
    """One ``VariantsFn`` running each of ``fns`` in turn."""
    return lambda model, calib: [v for fn in fns for v in fn(model, calib)]
