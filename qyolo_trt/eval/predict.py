"""Run one or several runners in lock-step over the same images: detections in original-image pixels,
and (against a reference runner) the SQNR of chosen raw outputs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.base import Runner
from ..data import ImageLoader, unletterbox_boxes
from ..progress import progress
from .agreement import SqnrMeter
from .decode import Detections, Head, PostProcess, decode


@dataclass
class Predictions:
    """One runner's detections on a loader's images, in loader order."""

    detections: list[Detections] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)  # original (h, w)
    seconds: float = 0.0  # inference + post-processing


def predict(
    runners: Mapping[str, Runner],
    loader: ImageLoader,
    heads: Mapping[str, Head],
    post: PostProcess,
    reference: str | None = None,
    compared: Sequence[str] = (),
    pooled: Sequence[str] | None = None,
    desc: str = "eval",
) -> tuple[dict[str, Predictions], dict[str, SqnrMeter]]:
    """Every active runner on every batch (images are read once); SQNR of ``compared`` outputs vs ``reference``
    (``pooled``: the ones the head SQNR pools, ``SqnrMeter``)."""
    preds = {name: Predictions() for name in runners}
    meters = {name: SqnrMeter(pooled) for name in runners if reference is not None and name != reference}
    for batch in progress(loader, total=len(loader), desc=desc, unit="img"):
        raw = {}
        for name, runner in runners.items():
            t0 = time.perf_counter()
            raw[name] = runner.infer({runner.input_name: batch.images})
            dets = decode(raw[name], heads[name], post)
            out = preds[name]
            for d, info, path in zip(dets, batch.infos, batch.paths):
                out.detections.append(Detections(unletterbox_boxes(d.boxes, info), d.scores, d.classes))
                out.paths.append(path)
                out.sizes[path] = info.orig_shape
            out.seconds += time.perf_counter() - t0
        for name, meter in meters.items():
            meter.update(raw[reference], raw[name], compared)
    return preds, meters

