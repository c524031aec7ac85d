"""The embedded default model and calibration images, shipped as package data (``qyolo_trt/assets/``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import QyoloError

DEFAULT_ENGINES = Path("engines")

# evaluation post-processing (eval, compare, build's quality line, the README's tables): yolov5's val settings
EVAL_CONF = 0.001
EVAL_IOU = 0.6
EVAL_MAX_DET = 300


def _asset(name: str) -> Path:
    # setuptools installs package data as plain files (wheel and editable installs alike)
    return Path(str(resources.files("qyolo_trt") / "assets" / name))


def default_model() -> Path:
    """Path of the embedded yolov5n.onnx; an error if this install lacks its package data."""
    path = _asset("yolov5n.onnx")
    if not path.is_file():
        raise QyoloError(f"embedded default model not found at {path} (broken install?); pass a MODEL argument")
    return path


def default_calib() -> Path:
    """Folder of the embedded calibration images; an error if this install lacks its package data."""
    path = _asset("calib_data")
    if not path.is_dir():
        raise QyoloError(f"embedded calibration images not found at {path} (broken install?); pass --calib/--images")
    return path
