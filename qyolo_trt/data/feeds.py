"""Small in-memory input sets (a few letterboxed images) for probes: sensitivity, fallback, bias correction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from ..defaults import SENSITIVITY_IMAGES
from ..model import inspect_detector
from .loader import ImageLoader
from .sources import list_images

Feeds = dict[str, np.ndarray]


def load_feeds(model: onnx.ModelProto, images: str | os.PathLike | Sequence[str | os.PathLike], num_images: int = SENSITIVITY_IMAGES) -> list[Feeds]:
    """Letterboxed image batches for the detector ``model`` (batched when its batch dimension is dynamic)."""
    info = inspect_detector(model)
    paths = [Path(p) for p in images] if isinstance(images, (list, tuple)) else list_images(images, limit=num_images)
    loader = ImageLoader(paths[:num_images], info.imgsz, batch=num_images if info.dynamic_batch else 1)
    return [{info.input_name: b.images} for b in loader]


def count_images(feeds: Sequence[Feeds]) -> int:
    """Images in ``feeds`` (the batch dimension of each feed, summed)."""
    return sum(len(next(iter(f.values()))) for f in feeds)
