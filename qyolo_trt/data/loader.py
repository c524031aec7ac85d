"""Read images robustly and iterate letterboxed NCHW float32 batches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import QyoloError
from .letterbox import LetterboxInfo, letterbox, to_tensor


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """Read any image as HWC BGR uint8 the way Ultralytics' ``imread`` does (``cv2.IMREAD_COLOR``); None if unreadable.

    Grayscale is replicated to 3 channels, alpha is dropped, 16-bit keeps its high byte, EXIF orientation is applied.
    """
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if buf.size == 0:
        return None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return None if img is None or img.size == 0 else img


@dataclass
class Batch:
    """A batch of network inputs with the letterbox info needed to map boxes back."""

    images: np.ndarray  # N,3,H,W float32 RGB /255
    paths: list[Path]
    infos: list[LetterboxInfo]


@dataclass
class ImageLoader:
    """Iterate ``paths`` as letterboxed batches; unreadable files are skipped and counted.

    Iteration raises ``QyoloError`` if not a single image could be read.
    """

    paths: Sequence[Path]
    imgsz: tuple[int, int] = (640, 640)
    batch: int = 1
    limit: int | None = None  # stop after this many readable images
    auto: bool = False
    skipped: list[Path] = field(default_factory=list)
    loaded: int = 0

    def __len__(self) -> int:
        """Number of images this loader will try to yield (an upper bound when files are unreadable)."""
        return min(len(self.paths), self.limit) if self.limit else len(self.paths)

    def __iter__(self) -> Iterator[Batch]:
        self.skipped, self.loaded = [], 0
        tensors: list[np.ndarray] = []
        paths: list[Path] = []
        infos: list[LetterboxInfo] = []
        for path in self.paths:
            if self.limit and self.loaded >= self.limit:
                break
            img = read_image(path)
            if img is None:
                self.skipped.append(Path(path))
                continue
            boxed, info = letterbox(img, self.imgsz, auto=self.auto)
            tensors.append(to_tensor(boxed))
            paths.append(Path(path))
            infos.append(info)
            self.loaded += 1
            if len(tensors) == self.batch:
                yield Batch(np.stack(tensors), paths, infos)
                tensors, paths, infos = [], [], []
        if tensors:
            yield Batch(np.stack(tensors), paths, infos)
        if self.loaded == 0:
            where = Path(self.paths[0]).parent if self.paths else "source"
            raise QyoloError(f"{where}: no readable image ({len(self.skipped)} unreadable file(s))")
