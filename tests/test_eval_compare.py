"""`qyolo-trt compare`: row plan, disjointness check, and one small end-to-end table on the real yolov5n."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import assert_clean_error, run_cli

from qyolo_trt.defaults import default_calib
from qyolo_trt.errors import QyoloError
from qyolo_trt.eval.compare import overlap, plan
from qyolo_trt.eval.peers import available_peers


def test_plan_gives_shifted_and_asymmetric_rows_to_uh_only():
    rows = plan(["uh", "minmax"], ["symmetric", "shifted", "asymmetric"])
    assert rows == [("uh", "symmetric"), ("uh", "shifted"), ("uh", "asymmetric"), ("minmax", "symmetric")]
    with pytest.raises(QyoloError, match="unknown mode"):
        plan(["uh"], ["int4"])


def test_overlap_by_path_and_by_content(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.jpg", "b.jpg", "c.jpg"))
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    c.write_bytes(b"one")  # a copy of a under another name
    assert overlap([a], [b]) == []
    assert overlap([a], [b, c]) == [c]
    assert overlap([tmp_path / "." / "a.jpg"], [a]) == [a]


def test_compare_refuses_calibration_images_in_the_evaluation_set(coco_dir):
    # the embedded calib_data/ images are copies of the first shared COCO images
    proc = run_cli("compare", "--data", coco_dir / "instances.json", "--num-images", "4", "--no-peers")
    assert_clean_error(proc, "calibration images", "--allow-overlap")


def test_compare_small_table(tmp_path, yolov5n_onnx, coco_dir):
    images = sorted((coco_dir / "images").iterdir())
    evalset = tmp_path / "eval.txt"
    evalset.write_text("\n".join(str(p) for p in images[40:43]))  # YOLO labels found beside them
    out = tmp_path / "cmp.json"
    proc = run_cli(
        "compare", yolov5n_onnx, "--calib", default_calib(), "--num-calib", "2", "--data", evalset,
        "--methods", "uh,minmax", "--modes", "symmetric,asymmetric", "--bootstrap", "50", "--json", "-o", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r == json.loads(out.read_text())
    assert (r["calib_images"], r["eval_images"], r["overlap"]) == (2, 3, 0)
    assert len(r["sqnr_on"]) == 3  # the three head convs of yolov5n
    rows = {row["label"]: row for row in r["rows"]}
    peers = [name for name, ok in available_peers().items() if ok]
    assert list(rows) == ["fp32", "uh/symmetric", "uh/symmetric+bc", "uh/asymmetric", "minmax/symmetric", *peers]
    assert rows["uh/symmetric+bc"]["bias_correction"] and rows["uh/symmetric+bc"]["target"] == "TensorRT"
    assert "ort-minmax" in peers and r["peers_available"]["ort-minmax"]
    assert rows["fp32"]["agreement"] == pytest.approx(1.0) and "drop" not in rows["fp32"]
    assert rows["uh/asymmetric"]["target"] == "zero-point" and rows["uh/symmetric"]["target"] == "TensorRT"
    for label in list(rows)[1:]:
        row = rows[label]
        assert 0.3 < row["agreement"] < 1.0, row
        assert math.isfinite(row["sqnr_db"]) and 10 < row["sqnr_db"] < 60, row
        assert row["drop"] == pytest.approx(rows["fp32"]["map50_95"] - row["map50_95"])
        assert row["drop_low"] <= row["drop_high"]


def test_compare_cli_bad_input(tmp_path):
    assert_clean_error(run_cli("compare", "--data", tmp_path / "none"), "no such file")
    shutil.copy(default_calib() / "000000000009.jpg", tmp_path / "x.jpg")
    assert_clean_error(run_cli("compare", "--data", tmp_path, "--modes", ",", "--no-peers"), "--modes")
