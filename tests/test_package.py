"""The product as a user installs it: a wheel (not editable) in a fresh venv, run from a directory outside the clone."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("setuptools")


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> tuple[Path, Path]:
    """(venv python, a working directory outside the clone) with only the wheel of this checkout installed non-editable.

    The venv sees the system's site-packages for the dependencies (so the test runs offline), but qyolo_trt itself
    comes from the wheel: the test checks that the imported package lives inside the venv."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, REPO],
                   check=True, capture_output=True, timeout=300)
    (whl,) = dist.glob("qyolo_trt-*.whl")
    venv.create(root / "venv", system_site_packages=True, with_pip=False)
    python = root / "venv" / "bin" / "python"
    # the running interpreter's site-packages too (it may itself be a venv): plain path lines, so its .pth files
    # (an editable install of this checkout among them) are not processed
    (purelib,) = {Path(p) for p in (python.parent.parent / "lib").glob("python*/site-packages")}
    (purelib / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", whl],
                   check=True, capture_output=True, timeout=300)
    work = root / "elsewhere"
    work.mkdir()
    return python, work


def _run(python: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([python, *args], cwd=work, capture_output=True, text=True, timeout=600, env=env)


def test_wheel_contains_the_embedded_default(wheel_env):
    python, work = wheel_env
    (whl,) = (Path(python).parents[2] / "dist").glob("qyolo_trt-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert "qyolo_trt/assets/yolov5n.onnx" in names and "qyolo_trt/assets/LICENSE.md" in names
    assert "qyolo_trt/assets/calib_data/LICENSE.md" in names
    assert len([n for n in names if n.startswith("qyolo_trt/assets/calib_data/") and n.endswith(".jpg")]) == 16


def test_installed_wheel_runs_outside_the_clone(wheel_env):
    python, work = wheel_env
    where = _run(python, work, "-c", "import qyolo_trt, qyolo_trt.defaults as d; print(qyolo_trt.__file__); print(d.default_model())")
    assert where.returncode == 0, where.stderr
    pkg, model = where.stdout.split()
    venv_dir = str(Path(python).parents[1])
    assert pkg.startswith(venv_dir) and model.startswith(venv_dir)  # the wheel's copy, not the checkout
    helped = _run(python, work, "-m", "qyolo_trt", "--help")
    assert helped.returncode == 0 and "build" in helped.stdout, helped.stderr
    # the main job on the embedded default, through the public Python API (calibrate + quantize, no TensorRT needed)
    api = _run(python, work, "-c", "import json, qyolo_trt as q; r = q.quantize(config=q.Recipe(bias_correction=False)); "
               "print(json.dumps({'convs': r.report['quantized'].get('Conv'), 'mode': r.report['mode']}))")
    assert api.returncode == 0, api.stderr
    assert json.loads(api.stdout) == {"convs": 57, "mode": "shifted"}
    assert list(work.iterdir()) == []  # nothing written into the working directory by the API


def test_installed_wheel_builds_an_engine(wheel_env):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed (pip install 'qyolo-trt[rtx]')")
    python, work = wheel_env
    proc = _run(python, work, "-m", "qyolo_trt", "build", "--gpu", "rtx4090", "--no-bias-correction", "-o", "x.engine", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [e["engine"] for e in result["engines"]] == ["x.engine"]  # one GPU asked: exactly the -o name
    assert sorted(p.name for p in work.iterdir()) == ["x.engine", "x.engine.json", "x.qdq.onnx", "x.uh.scales.json"]
    assert result["quality"]["images"] == 4 and result["quality"]["sqnr_db"] > 20
