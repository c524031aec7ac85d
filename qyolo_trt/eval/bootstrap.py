"""Paired bootstrap (per-image resampling, fixed seed) of the label-mAP drop between two models."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .cocoeval import CocoScore, weighted_map

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class DropInterval:
    """mAP50-95 drop (reference - test) and its paired-bootstrap 95% interval."""

    drop: float
    low: float
    high: float
    samples: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def resample_weights(n_images: int, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """[samples, n_images] multiplicities of a per-image resampling with replacement (shared by every model)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(samples, n_images))
    return np.stack([np.bincount(d, minlength=n_images) for d in draws])


def bootstrap_maps(score: CocoScore, weights: np.ndarray) -> np.ndarray:
    """mAP50-95 of ``score``'s matches under each resampling (zeros for a model without detections)."""
    if score.table is None:
        return np.zeros(len(weights))
    return np.array([weighted_map(score.table, w)[0] for w in weights])


def paired_drop(reference: CocoScore, test: CocoScore, weights: np.ndarray, reference_maps: np.ndarray | None = None) -> DropInterval:
    """Drop ``reference - test`` in mAP50-95 with the 2.5/97.5 percentiles over the same resamplings
    (pass ``reference_maps`` to reuse the reference's bootstrap across many test models)."""
    ref = bootstrap_maps(reference, weights) if reference_maps is None else reference_maps
    diff = ref - bootstrap_maps(test, weights)
    diff = diff[np.isfinite(diff)]
    low, high = np.percentile(diff, [2.5, 97.5]) if diff.size else (np.nan, np.nan)
    return DropInterval(reference.map50_95 - test.map50_95, float(low), float(high), int(diff.size))
