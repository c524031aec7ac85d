"""The CLI as a user meets it: help, version, and bad input as one clean line (exit 2, no file left behind)."""

from __future__ import annotations

import json
import re

import onnx
import pytest
from conftest import REPO, assert_clean_error, run_cli
from onnx import TensorProto, helper

import qyolo_trt
from qyolo_trt.cli import COMMANDS


def test_help_lists_exactly_the_commands_that_exist():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    listed = set(re.findall(r"^  ([a-z][a-z-]+)\s", proc.stdout.split("Commands:")[1], re.M))
    on_disk = {name for name, target in COMMANDS.items() if (REPO / "qyolo_trt" / "cli" / f"{target.split(':')[0]}.py").is_file()}
    assert "export" in listed and listed == on_disk


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"qyolo-trt, version {qyolo_trt.__version__}"


def test_export_help_documents_options():
    proc = run_cli("export", "--help")
    assert proc.returncode == 0
    for option in ("--imgsz", "--opset", "--dynamic-batch", "--output", "--json"):
        assert option in proc.stdout


def non_yolo_onnx(path):
    """A valid ONNX model that is not a detector: [1,3,224,224] -> [1,3] (a global-average-pool classifier)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)
    onnx.save(helper.make_model(helper.make_graph([node], "cls", [x], [y]), opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing", ("no such file",)),
        ("text", ("not a readable ONNX model",)),
        ("truncated", ("not a readable ONNX model",)),
        ("non_yolo", ("not a YOLO detector", "output y has shape [1, 3]")),
        ("suffix", ("unknown model format", ".h5")),
    ],
)
def test_bad_model_input_is_one_clean_line(case, words, tmp_path, yolov5n_onnx):
    src = {"suffix": tmp_path / "model.h5"}.get(case, tmp_path / "model.onnx")
    if case == "text":
        src.write_text("this is not an onnx model\n")
    elif case == "truncated":
        src.write_bytes(yolov5n_onnx.read_bytes()[: 200_000])
    elif case == "non_yolo":
        non_yolo_onnx(src)
    elif case == "suffix":
        src.write_bytes(b"\x89HDF\r\n")
    out = tmp_path / "out" / "model.onnx"
    proc = run_cli("export", src, "-o", out, *(("--json",) if case == "missing" else ()))
    assert_clean_error(proc, *words)
    if case == "missing":  # under --json the error is also one JSON object on stdout
        assert json.loads(proc.stdout) == {"error": proc.stderr.strip().removeprefix("error: "), "exit_code": 2}
    else:
        assert proc.stdout == ""
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_json_is_one_object_on_stdout(yolov5n_onnx):
    proc = run_cli("export", yolov5n_onnx, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["output"] is None and result["input_shape"] == [1, 3, 640, 640]


@pytest.mark.parametrize(("corrupt", "words"), [(0, "no images found"), (3, "no readable image (3 unreadable")])
def test_unusable_image_folder_is_one_clean_line(tmp_path, corrupt, words):
    """Through `calibrate` (the first command that reads images): an empty folder, a folder of corrupt JPEGs."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(corrupt):
        (images / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(i, 200)))
    out = tmp_path / "scales.json"
    assert_clean_error(run_cli("calibrate", "--images", images, "-o", out), words)
    assert not out.exists()


def test_build_text_prints_an_undefined_quality_as_such():
    """A random-init model has no confident FP32 detection: agreement is "nan" in the JSON result, printed as such."""
    from qyolo_trt.cli.build import _text

    result = {"engines": [], "artifacts": {}, "triton": [], "written": ["x.engine"], "scales_reused": False, "targets_note": "one GPU target",
              "quality": {"images": 4, "sqnr_db": 31.26, "agreement": "nan"}}
    assert "quality: head SQNR 31.3 dB, FP32 agreement nan on 4" in _text(result)
