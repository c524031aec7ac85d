"""The compare table: FP32 and every calibration method's QDQ model (and peers) on the same images; with CPU targets,
also each target's placement with its INT8 speed against the FP32 model in that runtime's default precision."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from ..backends import get_runner
from ..bench import plan as bench_plan
from ..bench import run_bench
from ..data import ImageLoader
from ..defaults import DEFAULT_METHOD, METHODS, MODES
from ..errors import QyoloError
from ..fileio import sha256_file
from ..model import inspect_detector, load_onnx
from .agreement import expose_outputs
from .bootstrap import DEFAULT_SAMPLES, bootstrap_maps, paired_drop, resample_weights
from .decode import Head, PostProcess
from .evaluate import EvalSet, head_outputs, jsonable, score, shared_outputs, sqnr_outputs
from .peers import PeerModel, available_peers, qdq_target, run_peers
from .predict import predict

TARGETS = {"symmetric": "TensorRT", "shifted": "TensorRT", "asymmetric": "zero-point"}
UH_ONLY_MODES = ("shifted", "asymmetric")  # need UH's lower/upper bounds


@dataclass
class Variant:
    """One row's model before evaluation."""

    label: str
    model: onnx.ModelProto
    target: str
    calib_seconds: float | None
    info: dict[str, Any] = field(default_factory=dict)


def overlap(calib: Sequence[Path], images: Sequence[Path]) -> list[Path]:
    """Evaluation images that are also calibration images (same resolved path or same file content)."""
    real = {os.path.realpath(p) for p in calib}
    hashes = {sha256_file(p) for p in calib if Path(p).is_file()}
    return [p for p in images if os.path.realpath(p) in real or (Path(p).is_file() and sha256_file(p) in hashes)]


def plan(methods: Sequence[str], modes: Sequence[str]) -> list[tuple[str, str]]:
    """(method, mode) rows: every method in symmetric mode; shifted and asymmetric only for UH."""
    bad = [m for m in modes if m not in TARGETS]
    if bad:
        raise QyoloError(f"unknown mode(s) {', '.join(bad)}; choose from {', '.join(TARGETS)}")
    return [(m, mode) for m in methods for mode in modes if mode not in UH_ONLY_MODES or m == "uh"]


def quantized_variants(model: onnx.ModelProto, calib: Sequence[Path], methods: Sequence[str], modes: Sequence[str],
                       bias_correction: bool = True, targets: Sequence[str] = ()) -> tuple[list[Variant], float]:
    """One calibration pass for every method, then each (method, mode) QDQ model; with ``bias_correction``,
    also each UH TensorRT row with its biases corrected on the calibration images (``+bc``); then, per target in
    ``targets``, UH placed by that target's profile in its default form (``uh/asymmetric@openvino``)."""
    from ..calib import calibrate
    from ..qdq.config import QuantizeConfig
    from ..qdq.pipeline import run

    rows = plan(methods, modes)
    t0 = time.perf_counter()
    wanted = [m for m, _ in rows] + ([DEFAULT_METHOD] if targets else [])
    scales = calibrate(model, list(calib), methods=list(dict.fromkeys(wanted)), progress_desc="calibrate")
    calib_s = time.perf_counter() - t0
    variants = []
    for method, mode in rows:
        config = QuantizeConfig(mode=mode)
        q = run(model, scales[method], config)
        info = {"method": method, "mode": mode, "quantized": q.report.get("quantized"), "shifted": len(q.report.get("shifted") or [])}
        variants.append(Variant(f"{method}/{mode}", q.model, TARGETS[mode], calib_s, info))
        if bias_correction and method == "uh" and TARGETS[mode] == "TensorRT":
            t1 = time.perf_counter()
            bc = run(model, scales[method], config.replace(bias_correction=True, bias_images=list(calib))).model
            variants.append(Variant(f"{method}/{mode}+bc", bc, TARGETS[mode], calib_s + time.perf_counter() - t1, {**info, "bias_correction": True}))
    for target in targets:
        t1 = time.perf_counter()
        config = QuantizeConfig(target=target, bias_images=list(calib), bias_num_images=len(calib))
        q = run(model, scales[DEFAULT_METHOD], config)
        info = {"method": DEFAULT_METHOD, "mode": config.mode, "placement": target, "quantized": q.report.get("quantized")}
        variants.append(Variant(f"{DEFAULT_METHOD}/{config.mode}@{target}", q.model, target, calib_s + time.perf_counter() - t1, info))
    return variants, calib_s


def target_speed(fp32_path: Path, variants: Sequence[Variant], iters: int, workdir: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Time each target row on its target's runtime, interleaved with the FP32 model there (one run per runtime):
    label -> {"speed_x": FP32 p50 in the runtime's default precision / this p50, "speed_vs": that baseline}, and one
    plain note per target whose INT8 model is not faster than that."""
    from ..qdq.rules import PROFILES

    speeds: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for backend in dict.fromkeys(b for v in variants if (b := PROFILES[v.target].backend) is not None):
        rows = [v for v in variants if PROFILES[v.target].backend == backend]
        paths = []
        for v in rows:
            paths.append(workdir / f"speed_{v.label.replace('/', '_').replace('@', '_')}.onnx")
            onnx.save(v.model, paths[-1])
        result = run_bench(bench_plan([fp32_path, *paths], backend), warmup=min(iters, 5), iters=iters)
        base = next(r for r in result["rows"] if r["label"] == result["baselines"][-1])
        precision = base["runner"].get("execution_precision", "fp32")
        for v, r in zip(rows, result["rows"][len(result["baselines"]):]):
            x = r["ratios"][base["label"]]
            speeds[v.label] = {"speed_x": x, "speed_vs": f"{backend} FP32 ({precision})"}
            if x <= 1.0:
                notes.append(f"{v.target}: INT8 ({v.label}) is not faster than the FP32 model in {backend}'s default precision "
                             f"({precision}) on this machine ({x:.2f}x): deploy the FP32 model there")
    return speeds, notes


def peer_variant(peer: PeerModel) -> Variant:
    return Variant(peer.label, peer.model, qdq_target(peer.model), peer.seconds, {"note": peer.note})


def compare(
    model_path: str | os.PathLike,
    calib: Sequence[Path],
    images: Sequence[Path],
    data: str | os.PathLike,
    *,
    methods: Sequence[str] = METHODS,
    modes: Sequence[str] = MODES,
    peers: bool = True,
    allow_overlap: bool = False,
    post: PostProcess = PostProcess(),
    samples: int = DEFAULT_SAMPLES,
    extra_variants: Callable[[onnx.ModelProto, Sequence[Path]], list[Variant]] | None = None,
    bias_correction: bool = True,
    targets: Sequence[str] = (),
    speed_iters: int = 30,
) -> dict[str, Any]:
    """Rows for FP32, each method x mode and the peers, all evaluated in one lock-step pass over ``images``
    (labels from ``data``); FP32 outputs are computed once and shared by every row. ``extra_variants(fp32, calib)``
    adds rows (e.g. low-bit or float-fallback models from ``qyolo_trt.analysis.rows``). ``targets``: a row per
    target placement, timed on its runtime against FP32 (``speed_iters`` interleaved rounds; 0: not timed)."""
    shared = overlap(calib, images)
    if shared and not allow_overlap:
        raise QyoloError(f"{len(shared)} evaluation image(s) are also calibration images (e.g. {shared[0]}); use disjoint sets or --allow-overlap")
    fp32 = load_onnx(model_path)
    info = inspect_detector(fp32, source=str(model_path))
    head = Head.from_names(info.layout, info.output_names)
    names = head_outputs(fp32)
    variants, calib_s = quantized_variants(fp32, calib, methods, modes, bias_correction, targets)
    if extra_variants is not None:
        variants += extra_variants(fp32, calib)
    if peers:
        variants += [peer_variant(p) for p in run_peers(Path(model_path), info, calib, names)]
    with tempfile.TemporaryDirectory(prefix="qyolo-compare-") as tmp, contextlib.ExitStack() as stack:
        runners = {}
        for label, proto in [("fp32", fp32), *((v.label, v.model) for v in variants)]:
            path = Path(tmp) / f"{label.replace('/', '_')}.onnx"
            onnx.save(expose_outputs(proto, shared_outputs(names, proto, fp32)), path)
            runners[label] = stack.enter_context(get_runner("ort", path))
        loader = ImageLoader(list(images), info.imgsz)
        preds, meters = predict(runners, loader, {k: head for k in runners}, post, "fp32", sqnr_outputs(names, head), names, desc="compare")
        placed = [v for v in variants if "placement" in v.info]
        speeds, notes = target_speed(Path(model_path), placed, speed_iters, Path(tmp)) if placed and speed_iters else ({}, [])
    es = EvalSet.build(data, preds["fp32"], info.num_classes)
    es.set_reference(preds["fp32"])
    ref = score(preds["fp32"], es)
    weights = resample_weights(len(es.paths), samples)
    ref_maps = bootstrap_maps(ref["label_score"], weights) if "label_score" in ref else None
    rows = [{"label": "fp32", "target": "-", "calib_s": None, **jsonable(ref)}]
    for v in variants:
        row = score(preds[v.label], es, meters[v.label])
        if ref_maps is not None:
            d = paired_drop(ref["label_score"], row["label_score"], weights, ref_maps)
            row.update(drop=d.drop, drop_low=d.low, drop_high=d.high)
        rows.append({"label": v.label, "target": v.target, "calib_s": round(v.calib_seconds, 2), **v.info, **speeds.get(v.label, {}), **jsonable(row)})
    return {
        "model": str(model_path),
        "data": str(data),
        "calib_images": len(calib),
        "eval_images": len(es.paths),
        "overlap": len(shared),
        "calib_seconds": round(calib_s, 2),
        "bootstrap_samples": samples,
        "sqnr_on": names,
        "settings": {"conf": post.conf, "iou": post.iou, "max_det": post.max_det},
        "peers_available": available_peers(),
        "rows": rows,
        "notes": notes,
    }


COLUMNS = ["row", "target", "mAP50-95", "mAP50", "drop [95% CI]", "FP32 agreement", "head SQNR dB", "calib s"]
SPEED_COLUMN = "x vs FP32 (runtime default)"


def table_columns(result: dict[str, Any]) -> list[str]:
    """``COLUMNS``, plus the speed column when a row was timed."""
    return COLUMNS + ([SPEED_COLUMN] if any("speed_x" in r for r in result["rows"]) else [])


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The compare result as display rows (see ``COLUMNS``)."""
    num = lambda v, fmt: format(v, fmt) if isinstance(v, (int, float)) else ("" if v is None else str(v))  # noqa: E731
    out = []
    for r in result["rows"]:
        drop = f"{num(r['drop'], '+.4f')} [{num(r['drop_low'], '+.4f')}, {num(r['drop_high'], '+.4f')}]" if "drop" in r else ""
        out.append({
            "row": r["label"],
            "target": r["target"],
            "mAP50-95": num(r.get("map50_95"), ".4f"),
            "mAP50": num(r.get("map50"), ".4f"),
            "drop [95% CI]": drop,
            "FP32 agreement": num(r.get("agreement"), ".4f"),
            "head SQNR dB": num(r.get("sqnr_db"), ".2f"),
            "calib s": num(r.get("calib_s"), ".1f"),
            SPEED_COLUMN: num(r.get("speed_x"), ".2f"),
        })  # fmt: skip
    return out
