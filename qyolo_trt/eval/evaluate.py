"""Score predictions (label mAP, FP32 agreement, head SQNR) and the whole `eval` command as one function."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..backends import get_runner
from ..data import ImageLoader, list_images
from ..errors import QyoloError
from ..model import inspect_detector, load_onnx
from .agreement import SqnrMeter, detections_as_groundtruth, expose_outputs, fp32_agreement
from .artifact import artifact_info
from .cocoeval import CocoScore, detections_to_coco, evaluate_coco
from .decode import Head, PostProcess
from .groundtruth import category_ids, load_groundtruth
from .predict import Predictions, predict


@dataclass
class EvalSet:
    """The evaluated images, their COCO image ids and ground truth (None for unlabelled images)."""

    paths: list[Path]
    image_ids: list[int]
    gt: dict | None
    cats: np.ndarray
    reference_gt: dict | None = None  # confident FP32 detections, for agreement

    @classmethod
    def build(cls, data: str | os.PathLike, preds: Predictions, num_classes: int, labels: bool = True) -> "EvalSet":
        gt_ids = load_groundtruth(data, preds.paths, preds.sizes, num_classes) if labels else None
        gt, ids = gt_ids if gt_ids else (None, list(range(1, len(preds.paths) + 1)))
        return cls(list(preds.paths), ids, gt, category_ids(num_classes))

    def set_reference(self, ref: Predictions) -> None:
        self.reference_gt = detections_as_groundtruth(
            ref.detections, self.image_ids, [ref.sizes[p] for p in ref.paths], self.cats
        )


def head_outputs(model: onnx.ModelProto) -> list[str]:
    """The head's final conv outputs (for SQNR), or the model's outputs when the head is not recognised."""
    try:
        from ..qdq import head_conv_outputs

        names = head_conv_outputs(model)
    except (ImportError, QyoloError):
        names = []
    return names or [o.name for o in model.graph.output]


def shared_outputs(names: Sequence[str], model: onnx.ModelProto, reference: onnx.ModelProto) -> list[str]:
    """``names`` if ``model`` has all of them, else the graph outputs both models share."""
    tensors = {t for n in model.graph.node for t in n.output}
    if all(n in tensors for n in names):
        return list(names)
    common = [o.name for o in reference.graph.output if o.name in {p.name for p in model.graph.output}]
    if not common:
        raise QyoloError("the model and the reference share no output name to compare")
    return common


def score(preds: Predictions, es: EvalSet, meter: SqnrMeter | None = None) -> dict[str, Any]:
    """One row of numbers for ``preds`` (label mAP when ``es`` has labels; agreement and SQNR with a reference)."""
    row: dict[str, Any] = {"images": len(preds.paths), "seconds": round(preds.seconds, 3)}
    label = label_score(preds, es)
    if label is not None:
        row.update(map50_95=label.map50_95, map50=label.map50, label_score=label)
    if es.reference_gt is not None:
        agree = fp32_agreement(es.reference_gt, preds.detections, es.image_ids, es.cats)
        row.update(agreement=agree.map50_95, agreement50=agree.map50)
    if meter is not None:
        row.update(sqnr_db=meter.db(), sqnr_tensors=meter.per_tensor())
        if others := meter.others():
            row["output_sqnr_db"] = meter.db(others)
    return row


def label_score(preds: Predictions, es: EvalSet) -> CocoScore | None:
    """COCO mAP against the labels (None without labels)."""
    if es.gt is None:
        return None
    return evaluate_coco(es.gt, detections_to_coco(preds.detections, es.image_ids, es.cats), es.image_ids)


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """Drop in-memory objects; non-finite floats become strings ("inf", "nan") so the JSON stays strict."""
    fix = lambda v: str(v) if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    out = {k: fix(v) for k, v in row.items() if not isinstance(v, CocoScore)}
    if isinstance(out.get("sqnr_tensors"), dict):
        out["sqnr_tensors"] = {k: fix(v) for k, v in out["sqnr_tensors"].items()}
    return out


def evaluate(
    model: str | os.PathLike,
    data: str | os.PathLike,
    *,
    backend: str = "ort",
    reference: str | os.PathLike | None = None,
    post: PostProcess = PostProcess(),
    num_images: int | None = None,
    labels: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``data`` (COCO json, YOLO-labels set, or unlabelled images with ``reference``);
    ``labels=False`` ignores any labels (FP32 agreement and SQNR only, e.g. for a model of other classes)."""
    t0 = time.perf_counter()
    info = artifact_info(model)
    paths = list_images(data, limit=num_images)
    with tempfile.TemporaryDirectory(prefix="qyolo-eval-") as tmp:
        artifacts, heads, compared, pooled = {"model": Path(model)}, {"model": info.head}, [], None
        if reference is not None:
            artifacts, heads, compared, pooled = _with_reference(Path(model), Path(reference), info.head, Path(tmp))
        with contextlib.ExitStack() as stack:
            runners = {n: stack.enter_context(get_runner(backend if n == "model" else "ort", a)) for n, a in artifacts.items()}
            loader = ImageLoader(paths, info.imgsz)
            preds, meters = predict(runners, loader, heads, post, "reference" if reference else None, compared, pooled)
    es = EvalSet.build(data, preds["model"], info.num_classes, labels)
    if es.gt is None and reference is None:
        raise QyoloError(f"{data}: no labels (COCO json or images/ + labels/); pass --reference FP32.onnx for FP32 agreement")
    if reference is not None:
        es.set_reference(preds["reference"])
    row = score(preds["model"], es, meters.get("model"))
    return {
        "model": str(model),
        "backend": backend,
        "data": str(data),
        "reference": str(reference) if reference else None,
        "skipped": [str(p) for p in loader.skipped],
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "ms_per_image": round(1000 * preds["model"].seconds / max(len(preds["model"].paths), 1), 2),
        "sqnr_on": pooled or compared or None,
        "settings": {"conf": post.conf, "iou": post.iou, "max_det": post.max_det, "multi_label": post.multi_label},
        **jsonable(row),
    }


def _with_reference(
    model: Path, reference: Path, head: Head, tmp: Path
) -> tuple[dict[str, Path], dict[str, Head], list[str], list[str] | None]:
    """Artifacts to run, their heads, the outputs compared for SQNR and the ones pooled for the head SQNR (an ONNX
    model: the head convs, exposed in both models, pooled; the graph outputs compared beside them)."""
    ref_model = load_onnx(reference)
    ref_info = inspect_detector(ref_model, source=str(reference))
    if ref_info.layout != head.layout:
        raise QyoloError(f"--reference {reference} has a {ref_info.layout} head, {model} a {head.layout} one: "
                         "give the FP32 model this one was made from")
    ref_head = Head.from_names(ref_info.layout, ref_info.output_names)
    if model.suffix == ".engine":
        return {"model": model, "reference": reference}, {"model": head, "reference": ref_head}, list(head.outputs), None
    test_model = load_onnx(model)
    names = shared_outputs(head_outputs(ref_model), test_model, ref_model)
    paths = {"model": tmp / "model.onnx", "reference": tmp / "reference.onnx"}
    onnx.save(expose_outputs(test_model, names), paths["model"])
    onnx.save(expose_outputs(ref_model, names), paths["reference"])
    return paths, {"model": head, "reference": ref_head}, sqnr_outputs(names, head), names


def sqnr_outputs(pooled: list[str], head: Head) -> list[str]:
    """The tensors SQNR is measured on: the ``pooled`` head convs, then the graph outputs not among them."""
    return pooled + [o for o in head.outputs if o not in pooled]



def quality(model: onnx.ModelProto, reference: onnx.ModelProto, images: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Head SQNR (dB), output SQNR (the graph outputs) and FP32 agreement of ``model`` against its FP32 ``reference`` on ``images`` (no labels needed)."""
    with tempfile.TemporaryDirectory(prefix="qyolo-quality-") as tmp:
        paths = {"model": Path(tmp) / "model.onnx", "reference": Path(tmp) / "reference.onnx"}
        onnx.save(model, paths["model"])
        onnx.save(reference, paths["reference"])
        listing = Path(tmp) / "images.txt"
        listing.write_text("\n".join(str(Path(p).resolve()) for p in images), encoding="utf-8")
        row = evaluate(paths["model"], listing, reference=paths["reference"], labels=False)
    return {"images": row["images"], "sqnr_db": row.get("sqnr_db"), "output_sqnr_db": row.get("output_sqnr_db"),
            "agreement": row.get("agreement")}
