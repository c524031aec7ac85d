"""Shared fixtures: the real model and images in ../shared/data (skipped when absent) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("QYOLO_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(rel: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


@pytest.fixture(scope="session")
def yolov5n_onnx() -> Path:
    """The real COCO-pretrained yolov5n ONNX (anchor-based head)."""
    return shared_path("weights/yolov5n.onnx")


@pytest.fixture(scope="session")
def coco_dir() -> Path:
    """96 real COCO images with YOLO labels and instances.json."""
    return shared_path("coco")


@pytest.fixture(scope="session")
def structure_models() -> dict[str, Path]:
    """Random-weight Ultralytics graphs (yolov8n, yolo11n, yolov5nu) for structure tests."""
    return {n: shared_path(f"structure/{n}.onnx") for n in ("yolov8n", "yolo11n", "yolov5nu")}


@pytest.fixture(scope="session")
def bus_jpg() -> Path:
    return shared_path("bus.jpg")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``qyolo-trt ARGS`` in a subprocess, as a user would; returns the completed process (text mode)."""
    return subprocess.run(
        [sys.executable, "-m", "qyolo_trt", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A bad-input failure: exit 2, one line on stderr, no traceback, the expected words in it."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    for n in needles:
        assert n.lower() in err.lower(), (n, err)
