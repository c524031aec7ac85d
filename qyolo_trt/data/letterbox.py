"""Letterbox exactly like Ultralytics' ``LetterBox`` and its inverse for boxes (``scale_boxes``)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image maps into the network input: ``x_in = x_orig * ratio + pad``."""

    ratio: float
    pad: tuple[int, int]  # (left, top) in network-input pixels
    orig_shape: tuple[int, int]  # (h, w)
    new_shape: tuple[int, int]  # (h, w) of the letterboxed image

    @property
    def gain(self) -> tuple[float, float]:
        """Exact (x, y) scale of the resized image: ``ratio`` up to the rounding of each side to whole pixels."""
        h, w = self.orig_shape
        new_w, new_h = _resized_wh(self.orig_shape, self.ratio)
        return new_w / w, new_h / h


def _resized_wh(shape: tuple[int, int], r: float) -> tuple[int, int]:
    """(w, h) of an (h, w) image scaled by ``r``; each side rounded, at least 1 pixel (as Ultralytics)."""
    return max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)


def letterbox(
    img: np.ndarray,
    new_shape: tuple[int, int] = (640, 640),
    auto: bool = False,
    stride: int = 32,
    scaleup: bool = True,
    center: bool = True,
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize keeping aspect ratio and pad with 114 to ``new_shape`` (``auto``: pad only to a stride multiple)."""
    shape = img.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = _resized_wh(shape, r)
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:
        dw, dh = np.mod(dw, stride), np.mod(dh, stride)
    if center:
        dw, dh = dw / 2, dh / 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = (int(round(dh - 0.1)) if center else 0), int(round(dh + 0.1))
    left, right = (int(round(dw - 0.1)) if center else 0), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img, LetterboxInfo(ratio=r, pad=(left, top), orig_shape=(shape[0], shape[1]), new_shape=img.shape[:2])


def to_tensor(img: np.ndarray) -> np.ndarray:
    """HWC BGR uint8 -> CHW RGB float32 in [0, 1]."""
    return np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def unletterbox_boxes(boxes: np.ndarray, info: LetterboxInfo, clip: bool = True) -> np.ndarray:
    """Map xyxy boxes from network-input pixels back to original-image pixels (Ultralytics' ``scale_boxes``)."""
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    out -= np.array(info.pad * 2, dtype=np.float32)
    out /= np.array(info.gain * 2, dtype=np.float32)
    if clip:
        h, w = info.orig_shape
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out
