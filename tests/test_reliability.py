"""Bad input and faults, one parametrised matrix per defect class: exit 2 (143 for SIGTERM), exactly one ``error:``
line on stderr, no traceback, nothing left beside the output or in TMPDIR, and the input files untouched."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import REPO, assert_clean_error, run_cli
from qyolo_trt.defaults import default_calib, default_model


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Files under ``folder`` (recursively): temp files and partial outputs alike."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def model(tmp_path) -> Path:
    """A private copy of the embedded yolov5n (inputs are hashed before and after)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(default_model().read_bytes())
    return path


def inproc(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI's ``main`` in this process (so a fault can be injected); (exit code, stdout, stderr)."""
    from qyolo_trt.cli import main

    monkeypatch.setattr(sys, "argv", ["qyolo-trt", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def one_error_line(code: int, err: str, *words: str) -> None:
    """A failure after work began: progress lines may precede it, then exactly one ``error:`` line, the last."""
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert [ln for ln in lines if ln.startswith("error:")] == lines[-1:] and "Traceback" not in err, err
    for w in words:
        assert w.lower() in err.lower(), (w, err)


# ---- 1. OS errors on output: exit 2 with the OS's words and the path, multi-file outputs all or nothing ----

def _fail_nth_write(monkeypatch, n: int, code: int = errno.ENOSPC) -> None:
    """The ``n``-th artifact write (to a temp file) fails like a full disk."""
    real, calls = pathlib.Path.write_bytes, []

    def write_bytes(self, data):
        if self.name.endswith(".tmp"):
            calls.append(self)
            if len(calls) == n:
                raise OSError(code, os.strerror(code), str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("nth", [1, 3, 5])
def test_calibrate_all_methods_is_all_or_nothing(monkeypatch, capsys, tmp_path, model, nth):
    before = digest(model)
    _fail_nth_write(monkeypatch, nth)
    out = tmp_path / "out"
    code, _, err = inproc(monkeypatch, capsys, "calibrate", model, "--images", default_calib(), "--num-images", "1",
                          "--method", "all", "-o", out / "s.json")
    one_error_line(code, err, "no space left on device", str(out))
    assert leftovers(out) == [] and digest(model) == before


def test_quantize_disk_full_names_the_output(monkeypatch, capsys, tmp_path, model):
    _fail_nth_write(monkeypatch, 1)
    code, _, err = inproc(monkeypatch, capsys, "quantize", model, "--images", default_calib(), "--num-images", "1", "-o", tmp_path / "o" / "q.onnx")
    one_error_line(code, err, "cannot write", "q.onnx", "no space left on device")
    assert leftovers(tmp_path / "o") == []


def test_plot_hist_is_all_or_nothing(monkeypatch, capsys, tmp_path, model):
    pytest.importorskip("matplotlib")
    _fail_nth_write(monkeypatch, 2)
    out = tmp_path / "plots"
    code, _, err = inproc(monkeypatch, capsys, "plot-hist", model, "--images", default_calib(), "--num-images", "1", "--top", "3", "-o", out)
    one_error_line(code, err, "no space left on device")
    assert leftovers(out) == []


def test_permission_denied_is_one_line(monkeypatch, capsys, tmp_path, model):
    """A read-only folder (simulated: the suite may run as root, which ignores permissions)."""
    import tempfile

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    code, _, err = inproc(monkeypatch, capsys, "calibrate", model, "--images", default_calib(), "--num-images", "1", "-o", tmp_path / "s.json")
    one_error_line(code, err, "permission denied", "s.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_for_real(tmp_path, model):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    proc = run_cli("calibrate", model, "--images", default_calib(), "--num-images", "1", "-o", ro / "s.json")
    assert_clean_error(proc, "permission denied")
    assert leftovers(ro) == []


@pytest.mark.parametrize("cmd", [
    ["quantize", "{model}", "--images", "{calib}", "--num-images", "1", "-o", "{dir}"],
    ["calibrate", "{model}", "--images", "{calib}", "--num-images", "1", "-o", "{dir}"],
    ["compare", "{model}", "--calib-split", "1", "--data", "{calib}", "-o", "{dir}"],
])
def test_output_naming_an_existing_folder(tmp_path, model, cmd):
    folder = tmp_path / "existing"
    folder.mkdir()
    args = [a.format(model=model, calib=default_calib(), dir=folder) for a in cmd]
    proc = run_cli(*args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "directory" in proc.stderr, proc.stderr
    assert leftovers(folder) == []


# ---- 2. a command never overwrites its own input (same path, symlink, hard link) ----

def _self_overwrite_cases(tmp_path: Path, model: Path) -> dict[str, tuple[list[str], list[Path]]]:
    link = tmp_path / "link.onnx"
    link.symlink_to(model)
    hard = tmp_path / "hard.onnx"
    os.link(model, hard)
    scales = tmp_path / "s.json"
    scales.write_text("{}")
    qdq = tmp_path / "q.qdq.onnx"
    qdq.write_bytes(model.read_bytes())
    calib = ["--images", str(default_calib()), "--num-images", "1"]
    return {
        "quantize-same": (["quantize", str(model), *calib, "-o", str(model)], [model]),
        "quantize-symlink": (["quantize", str(model), *calib, "-o", str(link)], [model]),
        "quantize-hardlink": (["quantize", str(model), *calib, "-o", str(hard)], [model]),
        "quantize-scales": (["quantize", str(model), "--scales", str(scales), "-o", str(scales)], [model, scales]),
        "calibrate-model": (["calibrate", str(model), *calib, "-o", str(model)], [model]),
        "calibrate-cache-collides": (["calibrate", str(model), *calib, "--method", "all", "-o", str(scales), "--calib-cache", str(scales)], [scales]),
        "build-qdq": (["build", str(qdq), "-o", str(qdq)], [qdq]),
        "build-artifact-is-engine": (["build", str(model), "--gpu", "sm89", "-o", str(tmp_path / "m.qdq.onnx")], [model]),
    }


@pytest.mark.parametrize("case", ["quantize-same", "quantize-symlink", "quantize-hardlink", "quantize-scales", "calibrate-model",
                                  "calibrate-cache-collides", "build-qdq", "build-artifact-is-engine"])
def test_never_overwrites_an_input(tmp_path, model, case):
    args, inputs = _self_overwrite_cases(tmp_path, model)[case]
    before = {p: digest(p) for p in inputs}
    listing = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli(*args)
    assert_clean_error(proc)
    assert "refusing to overwrite" in proc.stderr or "same file" in proc.stderr, proc.stderr
    assert {p: digest(p) for p in inputs} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no temp files or partial outputs beside them


# ---- 3. SIGTERM cleans up like SIGINT and exits 143 ----

@pytest.mark.parametrize("cmd, delay", [
    (["calibrate", "--images", "{coco}", "--sample", "1", "-o", "{out}/s.json"], 2.0),
    (["build", "--gpu", "sm89", "-o", "{out}/x.engine"], 4.0),
])
def test_sigterm_leaves_nothing(tmp_path, coco_dir, cmd, delay):
    if cmd[0] == "build":
        pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed")
    out, tmpdir = tmp_path / "out", tmp_path / "tmpdir"
    tmpdir.mkdir()
    args = [a.format(coco=coco_dir / "images", out=out) for a in cmd]
    proc = subprocess.Popen([sys.executable, "-m", "qyolo_trt", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TMPDIR": str(tmpdir)})
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == "terminated" and "Traceback" not in err
    # ONNX Runtime itself keeps a session-id file ``.ses`` in TMPDIR on every run (interrupted or not): not ours
    assert leftovers(out) == [] and [f for f in leftovers(tmpdir) if f != ".ses"] == []


# ---- 4. malformed input files: one line naming what is wrong ----

def _scales_with(tensors) -> dict:
    return {"format": "qyolo-trt-scales", "version": 1, "model_hash": "", "method": "uh", "num_images": 1, "params": {}, "tensors": tensors}


@pytest.mark.parametrize("case, content, words", [
    ("string-scale", _scales_with({"images": {"scale": "0.1", "clip": 12.7, "min": 0, "max": 1}}), ["images", "scale"]),
    ("tensors-list", _scales_with([1, 2]), ["tensors"]),
    ("entry-not-object", _scales_with({"images": 3}), ["images", "object"]),
    ("nan-scale", _scales_with({"images": {"scale": float("nan"), "clip": 1.0, "min": 0, "max": 1}}), ["images", "finite positive"]),
    ("negative-clip", _scales_with({"images": {"scale": 0.1, "clip": -1.0, "min": 0, "max": 1}}), ["images", "clip"]),
])
def test_malformed_scales_file(tmp_path, model, case, content, words):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(content))
    proc = run_cli("quantize", model, "--scales", path, "-o", tmp_path / "q.onnx")
    assert_clean_error(proc, *words)
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("line, words", [
    ("images: 3c23d70a3c23d70a", ["malformed calibration-cache line"]),  # 16 hex digits
    ("images: 7fc00000", ["images", "finite and positive"]),  # NaN
    ("images: bf800000", ["images", "finite and positive"]),  # -1.0
    ("images: zz", ["malformed"]),
])
def test_malformed_or_bad_trt_cache(tmp_path, model, line, words):
    cache = tmp_path / "c.cache"
    cache.write_text(f"TRT-100000-EntropyCalibration2\n{line}\n")
    for proc in (run_cli("quantize", model, "--calib-cache", cache, "-o", tmp_path / "q.onnx"),
                 run_cli("calibrate", model, "--from-cache", cache, "-o", tmp_path / "s.json")):
        assert_clean_error(proc, *words)
    assert leftovers(tmp_path) == ["c.cache", "m.onnx"]


def test_coco_json_image_without_id(tmp_path, model):
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({"images": [{"file_name": "000000000009.jpg"}], "annotations": [], "categories": []}))
    assert_clean_error(run_cli("eval", model, "--data", coco), "id")


def test_binary_image_list(tmp_path, model):
    listing = tmp_path / "list.txt"
    listing.write_bytes(bytes(range(256)) * 4)
    assert_clean_error(run_cli("calibrate", model, "--images", listing, "-o", tmp_path / "s.json"), "list.txt")
    assert not (tmp_path / "s.json").exists()


def test_reference_of_another_layout(tmp_path, model, structure_models):
    proc = run_cli("eval", model, "--data", default_calib(), "--num-images", "1", "--reference", structure_models["yolov8n"])
    assert_clean_error(proc, "reference")


# ---- 5. bad values are refused, not run ----

def _inf_weight_model(tmp_path: Path, model: Path) -> Path:
    m = onnx.load(model)
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    init = next(t for t in m.graph.initializer if t.name == conv.input[1])
    w = numpy_helper.to_array(init).copy()
    w.flat[0] = np.inf
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    out = tmp_path / "inf.onnx"
    onnx.save(m, out)
    return out


@pytest.mark.parametrize("case", ["gpu-empty", "bins-huge", "threads-negative", "budget-nan", "budget-inf", "conf-nan", "percentile-zero",
                                  "inf-weight", "batch-zero", "reconstruct-iters-negative", "compare-reconstruct-bits", "qat-epochs-negative"])
def test_bad_values(tmp_path, model, case):
    out = tmp_path / "o"
    args = {
        "gpu-empty": (["build", model, "--gpu", "", "-o", out / "x.engine"], ["--gpu"]),
        "bins-huge": (["calibrate", model, "--bins", "100000000", "-o", out / "s.json"], ["--bins"]),
        "threads-negative": (["bench", model, "--threads", "-3"], ["--threads"]),
        "budget-nan": (["quantize", model, "--images", default_calib(), "--fallback-budget", "nan", "-o", out / "q.onnx"], ["--fallback-budget"]),
        "budget-inf": (["quantize", model, "--images", default_calib(), "--fallback-budget", "inf", "-o", out / "q.onnx"], ["--fallback-budget"]),
        "conf-nan": (["eval", model, "--data", default_calib(), "--conf", "nan"], ["--conf"]),
        "percentile-zero": (["calibrate", model, "--percentile", "0", "-o", out / "s.json"], ["--percentile"]),
        "inf-weight": (["quantize", _inf_weight_model(tmp_path, model), "--images", default_calib(), "--num-images", "1", "-o", out / "q.onnx"],
                       ["non-finite", "weight"]),
        "batch-zero": (["bench", model, "--batch", "0"], ["--batch"]),
        "reconstruct-iters-negative": (["quantize", model, "--images", default_calib(), "--reconstruct", "--reconstruct-iters", "-1",
                                        "-o", out / "q.onnx"], ["--reconstruct-iters"]),
        "compare-reconstruct-bits": (["compare", model, "--data", default_calib(), "--reconstruct", "9"], ["--reconstruct"]),
        "qat-epochs-negative": (["qat", model, "--images", default_calib(), "--epochs", "-1", "-o", out / "q.onnx"], ["--epochs"]),
    }[case]
    assert_clean_error(run_cli(*args[0]), *args[1])
    assert leftovers(out) == []


# ---- 6. a swapped, random or empty engine is refused (before any GPU is looked for) ----

def _engine_with_sidecar(tmp_path: Path, content: bytes, **fields) -> Path:
    engine = tmp_path / "x.engine"
    engine.write_bytes(content)
    sidecar = {"backend": "tensorrt", "backend_version": "10.8.0", "targets": ["sm89"], "precision": "int8",
               "inputs": [{"name": "images", "shape": [1, 3, 640, 640], "dtype": "float32"}],
               "outputs": [{"name": "output0", "shape": [1, 25200, 85], "dtype": "float32"}],
               "batch": {"min": 1, "opt": 1, "max": 1}, "layout": "anchor_based", "engine_sha256": hashlib.sha256(b"the engine that was built").hexdigest(),
               "options": {}, "report": None, **fields}
    Path(f"{engine}.json").write_text(json.dumps(sidecar))
    return engine


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, os.urandom(256), b"the engine that was built, then edited"],
                         ids=["empty", "zeros", "random", "edited"])
def test_engine_that_does_not_match_its_sidecar(tmp_path, content):
    engine = _engine_with_sidecar(tmp_path, content)
    for proc in (run_cli("inspect", engine), run_cli("bench", engine, "--iters", "1"),
                 run_cli("eval", engine, "--data", default_calib(), "--num-images", "1")):
        assert_clean_error(proc, "does not match its sidecar")


@pytest.mark.parametrize("field, value", [("targets", "sm89"), ("inputs", [{"name": 3}]), ("batch", {"min": "1"}),
                                          ("engine_sha256", 12), ("precision", "int4")])
def test_sidecar_fields_of_the_wrong_type(tmp_path, field, value):
    engine = _engine_with_sidecar(tmp_path, b"the engine that was built", **{field: value})
    assert_clean_error(run_cli("inspect", engine), field)


# ---- 7. click's usage errors are one line too ----

@pytest.mark.parametrize("args, words", [
    (["calibrate", "--method", "nope", "-o", "s.json"], ["--method"]),
    (["quantize", "--bits", "9", "-o", "q.onnx"], ["--bits"]),
    (["build", "--backend", "x"], ["--backend"]),
    (["calibrate", str(REPO), "-o", "s.json"], ["directory"]),
    (["nosuchcommand"], ["nosuchcommand"]),
    (["quantize", "--bogus"], ["--bogus"]),
    (["eval", "m.onnx"], ["--data"]),
])
def test_usage_errors_are_one_line(args, words):
    proc = run_cli(*args)
    assert_clean_error(proc, *words)
    assert proc.stdout == ""


def test_usage_error_under_json_is_also_a_json_object():
    proc = run_cli("calibrate", "--method", "nope", "-o", "s.json", "--json")
    assert_clean_error(proc, "--method")
    assert json.loads(proc.stdout)["exit_code"] == 2
