"""Damage of a model's raw outputs against cached FP32 outputs on the same feeds (relative MSE, cosine, SQNR)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from ..backends.ort.session import make_session
from ..data.feeds import Feeds
from ..eval.agreement import expose_outputs, sqnr_db


@dataclass(frozen=True)
class Damage:
    """Pooled over every compared tensor and image: noise / signal energy, mean cosine distance, SQNR (dB)."""

    rel_mse: float
    cosine: float
    sqnr_db: float

    def score(self, metric: str) -> float:
        return self.rel_mse if metric == "mse" else self.cosine


def run_outputs(model: onnx.ModelProto, feeds: Sequence[Feeds], outputs: Sequence[str]) -> list[list[np.ndarray]]:
    """``outputs`` (intermediate tensors allowed) of ``model`` on every feed, one ORT session."""
    session = make_session(expose_outputs(model, outputs).SerializeToString())
    return [session.run(list(outputs), feed) for feed in feeds]


class OutputProbe:
    """FP32 outputs computed once; ``damage(model)`` runs a variant on the same feeds and compares."""

    def __init__(self, fp32: onnx.ModelProto, feeds: Sequence[Feeds], outputs: Sequence[str]):
        self.feeds, self.outputs = list(feeds), list(outputs)
        self.reference = [[r.astype(np.float64) for r in rs] for rs in run_outputs(fp32, self.feeds, self.outputs)]
        self.signal = sum(float(np.square(r).sum()) for rs in self.reference for r in rs)

    def damage(self, model: onnx.ModelProto) -> Damage:
        noise, cosines = 0.0, []
        for refs, tests in zip(self.reference, run_outputs(model, self.feeds, self.outputs)):
            for r, t in zip(refs, tests):
                r2, t2 = r.reshape(len(r), -1), t.reshape(len(t), -1).astype(np.float64)  # one row per image
                noise += float(np.square(r2 - t2).sum())
                norms = np.linalg.norm(r2, axis=1) * np.linalg.norm(t2, axis=1)
                cosines.extend(np.where(norms > 0, (r2 * t2).sum(axis=1) / np.where(norms > 0, norms, 1.0), 1.0))
        rel = noise / self.signal if self.signal > 0 else (0.0 if noise == 0 else math.inf)
        return Damage(rel, float(1.0 - np.mean(cosines)), sqnr_db(self.signal, noise))
