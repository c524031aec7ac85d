"""calibrate() and `qyolo-trt calibrate` end to end on the real yolov5n with a few COCO images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli

from qyolo_trt.calib import METHODS, ScalesFile, calibrate, read_trt_cache
from qyolo_trt.calib import collect as collect_mod
from qyolo_trt.data import list_images
from qyolo_trt.model import inspect_detector, load_onnx, model_hash


@pytest.fixture(scope="module")
def images(coco_dir: Path) -> list[Path]:
    return list_images(coco_dir / "images")[:4]


@pytest.fixture(scope="module")
def results(yolov5n_onnx: Path, images: list[Path]) -> dict[str, ScalesFile]:
    return calibrate(yolov5n_onnx, images, methods=tuple(METHODS))


def test_every_method_covers_every_quantizable_activation(results: dict[str, ScalesFile], yolov5n_onnx: Path) -> None:
    model = load_onnx(yolov5n_onnx)
    names = set(results["uh"].tensors)
    assert list(results) == list(METHODS)
    assert all(set(r.tensors) == names and r.num_images == 4 for r in results.values())
    assert all(r.model_hash == model_hash(model) for r in results.values())
    graph_tensors = {t for n in model.graph.node for t in [*n.input, *n.output]}
    assert names <= graph_tensors | {"images"} and "images" in names  # the FP32 model's own names
    for node in model.graph.node:
        if node.op_type in ("Conv", "MaxPool", "Resize"):
            assert node.input[0] in names
        if node.op_type in ("Concat", "MaxPool", "Resize") and node.input[0] in names:
            assert node.output[0] in names, node.output[0]
    # shape arithmetic (e.g. Resize's size Concat) is not an activation
    assert not any("Unsqueeze" in n for n in names)


def test_uh_clips_post_silu_tensors_below_max(results: dict[str, ScalesFile]) -> None:
    uh, mm = results["uh"].tensors, results["minmax"].tensors
    silu = [n for n in uh if n.endswith("act/Mul_output_0")]
    assert len(silu) > 40
    for n in silu:
        assert uh[n].lower == pytest.approx(-0.2785, abs=0.01) and uh[n].lower == mm[n].min
        assert 0 < uh[n].clip <= mm[n].clip and uh[n].upper <= mm[n].max + 1e-6
    ratios = np.array([uh[n].clip / mm[n].clip for n in silu])
    assert 0.3 < np.median(ratios) < 0.95 and (ratios < 1).mean() > 0.8
    inp = uh["images"]
    assert (inp.min, inp.max, inp.lower) == (pytest.approx(0.0, abs=0.01), pytest.approx(1.0, abs=0.01), pytest.approx(0.0, abs=0.01))


def test_derived_concat_and_resize_statistics_equal_streamed_ones(structure_models: dict[str, Path], images: list[Path], monkeypatch) -> None:
    model = load_onnx(structure_models["yolov8n"])  # scale-based nearest Resize (yolov5n's uses runtime sizes)
    info = inspect_detector(model)
    derived = collect_mod.derivations(model, collect_mod.calibration_targets(model))
    assert sum("Resize" in n for n in derived) == 2 and sum("Concat" in n for n in derived) > 10
    fast = collect_mod.collect(model, info, images[:2], sample_stride=1)  # exact only for the full histogram
    monkeypatch.setattr(collect_mod, "derivations", lambda m, t: {})
    slow = collect_mod.collect(model, info, images[:2], sample_stride=1)
    for name in derived:
        a, b = fast.stats[name], slow.stats[name]
        assert (a.range, a.min, a.max) == (b.range, b.min, b.max), name
        np.testing.assert_array_equal(a.counts, b.counts, err_msg=name)
    # streaming: the state does not grow with the number of images
    assert sum(h.nbytes() for h in fast.stats.values()) == sum(h.nbytes() for h in collect_mod.collect(model, info, images[:1]).stats.values())


def test_calibrate_accepts_a_model_proto_and_a_folder(tmp_path: Path, yolov5n_onnx: Path, images: list[Path]) -> None:
    (tmp_path / "a.jpg").write_bytes(images[0].read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    out = calibrate(onnx.load(str(yolov5n_onnx)), tmp_path, methods=("minmax",))
    assert out["minmax"].num_images == 1 and out["minmax"].params["skipped_images"] == 1


def test_a_static_batch_model_runs_one_image_at_a_time(yolov5n_onnx: Path, images: list[Path], results: dict[str, ScalesFile]) -> None:
    batched = calibrate(yolov5n_onnx, images, methods=("minmax",), batch=3)["minmax"]
    assert batched.params["batch"] == 1 and batched.num_images == 4
    assert batched.to_dict()["tensors"] == results["minmax"].to_dict()["tensors"]


def test_cli_is_deterministic_and_writes_every_method(tmp_path: Path, yolov5n_onnx: Path, images: list[Path]) -> None:
    listing = tmp_path / "calib.txt"
    listing.write_text("\n".join(str(p) for p in images[:2]))
    args = [yolov5n_onnx, "--images", listing, "--method", "all", "--calib-cache", tmp_path / "c.cache", "--json"]
    first = run_cli("calibrate", *args, "-o", tmp_path / "a" / "s.json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["methods"] == list(METHODS) and report["images"] == 2 and report["skipped"] == 0
    assert report["tensors"] == len(ScalesFile.load(tmp_path / "a" / "s.uh.json").tensors) > 90
    assert report["seconds"] > 0
    for m in METHODS:
        assert ScalesFile.load(tmp_path / "a" / f"s.{m}.json").method == m
        header, scales = read_trt_cache(tmp_path / f"c.{m}.cache")
        assert header.startswith("TRT-") and len(scales) == report["tensors"]
    second = run_cli("calibrate", *args, "-o", tmp_path / "b" / "s.json")
    assert second.returncode == 0, second.stderr
    for m in METHODS:
        assert (tmp_path / "a" / f"s.{m}.json").read_bytes() == (tmp_path / "b" / f"s.{m}.json").read_bytes()


def test_cli_converts_a_tensorrt_calibration_cache(tmp_path: Path, yolov5n_onnx: Path) -> None:
    cache = tmp_path / "trtexec.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\nimages: 3c010204\n/model.0/act/Mul_output_0: 3e27efe0\n")
    proc = run_cli("calibrate", yolov5n_onnx, "--from-cache", cache, "-o", tmp_path / "s.json", "--json")
    assert proc.returncode == 0, proc.stderr
    loaded = ScalesFile.load(tmp_path / "s.json")
    assert loaded.model_hash == model_hash(load_onnx(yolov5n_onnx)) and loaded.params["header"] == "TRT-8601-EntropyCalibration2"
    assert loaded.tensors["images"].scale == float(np.frombuffer(bytes.fromhex("3c010204"), ">f4")[0]) == pytest.approx(1 / 127)
    assert loaded.tensors["/model.0/act/Mul_output_0"].clip == pytest.approx(127 * 0.1640009, rel=1e-6)


@pytest.mark.parametrize("case", ["empty", "corrupt", "no-model", "bad-cache", "bad-percentile"])
def test_cli_bad_input_is_one_clean_line_and_no_file(tmp_path: Path, yolov5n_onnx: Path, case: str) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    model, extra, words = yolov5n_onnx, [], ()
    if case == "empty":
        words = ("no images",)
    elif case == "corrupt":
        (folder / "a.jpg").write_bytes(b"\xff\xd8 truncated")
        (folder / "b.png").write_bytes(b"")
        words = ("no readable image",)
    elif case == "no-model":
        model, words = tmp_path / "missing.onnx", ("missing.onnx", "no such file")
    elif case == "bad-cache":
        (tmp_path / "x.cache").write_text("not a cache\n")
        extra, words = ["--from-cache", tmp_path / "x.cache"], ("calibration cache",)
    else:
        extra, words = ["--percentile", "0"], ("percentile",)
    out = tmp_path / "s.json"
    proc = run_cli("calibrate", model, "--images", folder, "-o", out, "--calib-cache", tmp_path / "s.cache", *extra)
    assert_clean_error(proc, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["imgs", *(["x.cache"] if case == "bad-cache" else [])])
