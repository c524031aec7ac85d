"""Extra `compare` rows: low-bit (W{b}A{b}) simulations, automatic float fallback and reconstruction, as
``eval.compare.Variant``s.
Each row is one ``qdq.pipeline.run`` with its config; the fallback rows share one sensitivity ranking."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
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


def lowbit_rows(methods: Sequence[str], modes: Sequence[str], bits: Sequence[int]) -> VariantsFn:
    """W{b}A{b} rows for every (method, mode) of the plan except shifted (one calibration pass per width)."""

    def rows(model: onnx.ModelProto, calib: Sequence[Path]) -> list[Variant]:
        out = []
        pairs = [(m, mode) for m, mode in plan(methods, modes) if mode != "shifted"]
        for b in bits:
            t0 = time.perf_counter()
            scales = calibrate(model, list(calib), methods=list(dict.fromkeys(m for m, _ in pairs)), bits=b, progress_desc=f"calibrate {b}-bit")
            seconds = time.perf_counter() - t0
            for method, mode in pairs:
                q = run(model, scales[method], QuantizeConfig(mode=mode, bits=b)).model
                out.append(Variant(f"{method}/{mode} W{b}A{b}", q, TARGETS[mode], seconds, {"method": method, "mode": mode, "bits": b}))
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
            q = run(model, scales, replace(config, fallback_k=k), ranking=ranking)
            fb = q.report["fallback"]
            info = {"method": method, "mode": "symmetric", "fallback_k": fb["k"], "fallback_units": [u["unit"] for u in fb["layers"]],
                    "fallback_calib_sqnr_db": fb["sqnr_db"]}  # fmt: skip
            out.append(Variant(f"{method}/symmetric fallback {k}", q.model, TARGETS["symmetric"], seconds, info))
        return out

    return rows


def reconstruct_rows(bits: Sequence[int], iters: int = RECONSTRUCT_ITERS) -> VariantsFn:
    """UH rows with reconstruction on the calibration images (``+rc``): shifted at 8 bits, W{b}A{b} symmetric below."""

    def rows(model: onnx.ModelProto, calib: Sequence[Path]) -> list[Variant]:
        out = []
        for b in bits:
            t0 = time.perf_counter()
            scales = calibrate(model, list(calib), methods=("uh",), bits=b, progress_desc=f"calibrate {b}-bit")["uh"]
            config = QuantizeConfig(bits=b, reconstruct=True, reconstruct_images=list(calib), reconstruct_num_images=len(calib),
                                    reconstruct_iters=iters)
            q = run(model, scales, config)
            label = f"uh/{config.mode}+rc" + (f" W{b}A{b}" if b != 8 else "")
            info = {"method": "uh", "mode": config.mode, "bits": b, "reconstruction": q.report["reconstruction"]}
            out.append(Variant(label, q.model, TARGETS[config.mode], time.perf_counter() - t0, info))
        return out

    return rows


def chained(*fns: VariantsFn) -> VariantsFn:
    """One ``VariantsFn`` running each of ``fns`` in turn."""
    return lambda model, calib: [v for fn in fns for v in fn(model, calib)]
