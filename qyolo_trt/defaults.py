"""The embedded default model and calibration images (shipped in the source tree)."""

from __future__ import annotations

from pathlib import Path

from .errors import QyoloError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "yolov5n.onnx"
DEFAULT_CALIB = REPO_ROOT / "calib_data"
DEFAULT_ENGINES = Path("engines")


def default_model() -> Path:
    """Path of the embedded yolov5n.onnx; an error if this install has no source tree."""
    if not DEFAULT_MODEL.is_file():
        raise QyoloError(f"embedded default model not found at {DEFAULT_MODEL}; pass a MODEL argument")
    return DEFAULT_MODEL


def default_calib() -> Path:
    """Folder of the embedded calibration images; an error if this install has no source tree."""
    if not DEFAULT_CALIB.is_dir():
        raise QyoloError(f"embedded calibration images not found at {DEFAULT_CALIB}; pass --calib/--images")
    return DEFAULT_CALIB
