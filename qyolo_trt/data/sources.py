"""Resolve an image source (folder, list file, YOLO dataset, COCO json) to a sorted list of image paths."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import QyoloError
from ..fileio import read_json

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"})


def list_images(src: str | os.PathLike | Sequence[str | os.PathLike], limit: int | None = None) -> list[Path]:
    """Image paths of ``src``: a folder (recursive), a YOLO dataset (``images/`` + ``labels/``),
    a ``.txt`` list of paths (relative to the list's folder), a COCO ``instances*.json``, or a list of paths."""
    if isinstance(src, (list, tuple)):
        if not src:
            raise QyoloError("empty list of images")
        return [Path(q) for q in src][:limit] if limit else [Path(q) for q in src]
    p = Path(src)
    if not p.exists():
        raise QyoloError(f"{p}: no such file or folder")
    if p.is_dir():
        root = p / "images" if (p / "images").is_dir() else p
        paths = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    elif p.suffix.lower() == ".json":
        paths = coco_image_paths(p)
    elif p.suffix.lower() == ".txt":
        paths = _read_list(p)
    elif p.suffix.lower() in IMAGE_SUFFIXES:
        paths = [p]
    else:
        raise QyoloError(f"{p}: not an image source (expected a folder, a .txt list, a COCO .json or an image)")
    if not paths:
        raise QyoloError(f"{p}: no images found")
    return paths[:limit] if limit else paths


def _read_list(p: Path) -> list[Path]:
    raw = p.read_bytes()
    if b"\x00" in raw:
        raise QyoloError(f"{p}: not a text list of image paths (binary content)")
    lines = [ln.strip() for ln in raw.decode("utf-8", errors="replace").splitlines()]
    return [q if q.is_absolute() else p.parent / q for q in (Path(ln) for ln in lines if ln and not ln.startswith("#"))]


def load_coco_json(p: Path) -> dict:
    """Read a COCO json with a one-line error for anything unreadable."""
    data = read_json(p, "COCO json")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise QyoloError(f"{p}: not a COCO json (no 'images' list)")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or isinstance(im.get("id"), bool) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise QyoloError(f"{p}: images[{i}] needs an integer 'id' and a 'file_name' string (got {json.dumps(im)[:80]})")
    for key in ("annotations", "categories"):
        entries = data.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise QyoloError(f"{p}: '{key}' must be a list of objects")
        if bad := next((e for e in entries if not isinstance(e.get("image_id" if key == "annotations" else "id"), int)), None):
            raise QyoloError(f"{p}: a '{key}' entry lacks an integer {'image_id' if key == 'annotations' else 'id'} ({json.dumps(bad)[:80]})")
    return data


def resolve_coco_file(json_path: Path, file_name: str) -> Path:
    """Where a COCO ``file_name`` lives: beside the json, in ``images/`` beside it, or in ``../images``."""
    for base in (json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"):
        cand = base / file_name
        if cand.exists():
            return cand
    return json_path.parent / file_name


def coco_image_paths(p: Path) -> list[Path]:
    """Image paths listed in a COCO json, in the json's order of image ids."""
    data = load_coco_json(p)
    images = sorted(data["images"], key=lambda im: im["id"])
    return [resolve_coco_file(p, im["file_name"]) for im in images]
