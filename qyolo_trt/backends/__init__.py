"""Runtime backends behind one interface; each lives in its own package and is imported on first use."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import QyoloError
from .base import Runner

# backend name -> "module:RunnerClass" (relative to this package)
RUNNERS: dict[str, str] = {
    "ort": "ort.runner:OrtRunner",
    "openvino": "openvino.runner:OpenVinoRunner",
    "trt": "tensorrt.runner:TrtRunner",
}


def default_backend(artifact: str | os.PathLike) -> str:
    """The backend an artifact runs on when none is named: ``trt`` for a TensorRT ``.engine``, else ``ort``."""
    return "trt" if Path(artifact).suffix == ".engine" else "ort"


def get_runner(backend: str, artifact: str | os.PathLike, **options: Any) -> Runner:
    """A runner for ``artifact`` on ``backend`` (not yet activated)."""
    target = RUNNERS.get(backend)
    if target is None:
        raise QyoloError(f"unknown backend {backend!r}; choose from {', '.join(RUNNERS)}")
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(f"{__name__}.{module_name}"), cls_name)
    return cls(artifact, **options)


__all__ = ["RUNNERS", "Runner", "default_backend", "get_runner"]
