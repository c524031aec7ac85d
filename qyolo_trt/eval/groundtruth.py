"""Ground truth as an in-memory COCO dataset dict: from a COCO instances json or a YOLO-labels set."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data.sources import load_coco_json, resolve_coco_file
from ..errors import QyoloError

# COCO-80 class index -> COCO-91 category id (the ids of instances_*.json)
COCO80_TO_91 = np.array(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
     35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
     64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90],
    dtype=np.int64,
)  # fmt: skip


def category_ids(num_classes: int) -> np.ndarray:
    """Model class index -> category id: the COCO-91 ids for 80-class models, else ``index + 1``."""
    return COCO80_TO_91 if num_classes == 80 else np.arange(1, num_classes + 1, dtype=np.int64)


def coco_dataset(images: list[dict], annotations: list[dict], categories: Sequence[int]) -> dict:
    """A minimal COCO dataset dict (annotation ids, areas and iscrowd filled in when absent)."""
    anns = [
        {"iscrowd": 0, "area": float(a["bbox"][2] * a["bbox"][3]), **a, "id": i + 1} for i, a in enumerate(annotations)
    ]
    return {"images": images, "annotations": anns, "categories": [{"id": int(c), "name": str(c)} for c in categories]}


def label_path(image: Path) -> Path:
    """Ultralytics' convention: ``.../images/x.jpg`` -> ``.../labels/x.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def has_yolo_labels(paths: Sequence[Path]) -> bool:
    """Whether the images sit in an ``images/`` folder with a ``labels/`` folder beside it."""
    return bool(paths) and label_path(Path(paths[0])).parent.is_dir() and "images" in Path(paths[0]).parts


def read_yolo_labels(path: Path) -> np.ndarray:
    """[K,5] rows (class, cx, cy, w, h) normalised; polygon rows become their bounding boxes."""
    if not path.exists():
        return np.zeros((0, 5), np.float64)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        vals = line.split()
        if not vals:
            continue
        try:
            nums = np.array(vals, dtype=np.float64)
        except ValueError:
            raise QyoloError(f"{path}:{n}: not a YOLO label line") from None
        if len(nums) == 5:
            rows.append(nums)
        elif len(nums) >= 7 and len(nums) % 2 == 1:
            xy = nums[1:].reshape(-1, 2)
            lo, hi = xy.min(0), xy.max(0)
            rows.append(np.r_[nums[0], (lo + hi) / 2, hi - lo])
        else:
            raise QyoloError(f"{path}:{n}: expected 'class cx cy w h' (or a polygon), got {len(nums)} values")
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def yolo_groundtruth(paths: Sequence[Path], sizes: Mapping[Path, tuple[int, int]], num_classes: int) -> tuple[dict, list[int]]:
    """COCO gt dict for a YOLO-labels set; ``sizes`` maps each image to its (h, w). Image ids are 1..N."""
    cats = category_ids(num_classes)
    images, anns = [], []
    for img_id, p in enumerate(paths, 1):
        h, w = sizes[Path(p)]
        images.append({"id": img_id, "file_name": Path(p).name, "height": int(h), "width": int(w)})
        lab = read_yolo_labels(label_path(Path(p)))
        if (lab[:, 0] >= num_classes).any() or (lab[:, 0] < 0).any():
            raise QyoloError(f"{label_path(Path(p))}: class id outside 0..{num_classes - 1}")
        xywh = lab[:, 1:] * [w, h, w, h]
        xywh[:, :2] -= xywh[:, 2:] / 2
        anns += [{"image_id": img_id, "category_id": int(cats[int(c)]), "bbox": b.tolist()} for c, b in zip(lab[:, 0], xywh)]
    return coco_dataset(images, anns, cats), list(range(1, len(paths) + 1))


def coco_groundtruth(json_path: Path, paths: Sequence[Path]) -> tuple[dict, list[int]]:
    """COCO gt dict restricted to ``paths`` (matched by resolved file path) and their image ids."""
    data = load_coco_json(json_path)
    by_path = {os.path.realpath(resolve_coco_file(json_path, im["file_name"])): im for im in data["images"]}
    try:
        images = [by_path[os.path.realpath(p)] for p in paths]
    except KeyError as exc:
        raise QyoloError(f"{json_path}: has no entry for image {exc.args[0]}") from None
    ids = {im["id"] for im in images}
    anns = [a for a in data.get("annotations", []) if a["image_id"] in ids and "bbox" in a]
    cats = sorted(c["id"] for c in data.get("categories", [])) or sorted({a["category_id"] for a in anns})
    return coco_dataset(images, anns, cats), [im["id"] for im in images]


def load_groundtruth(
    src: str | os.PathLike, paths: Sequence[Path], sizes: Mapping[Path, tuple[int, int]], num_classes: int
) -> tuple[dict, list[int]] | None:
    """The ground truth of an evaluation source: a COCO json, a YOLO-labels set, or None (unlabelled images)."""
    p = Path(src)
    if p.suffix.lower() == ".json":
        return coco_groundtruth(p, paths)
    if has_yolo_labels(paths):
        return yolo_groundtruth(paths, sizes, num_classes)
    return None
