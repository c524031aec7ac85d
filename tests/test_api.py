"""The public Python API, through the public names only (``import qyolo_trt as q``)."""

from __future__ import annotations

import json

import onnx
import pytest

import qyolo_trt as q


def test_public_names_are_lazy_and_complete():
    assert set(q.__all__) >= {"calibrate", "quantize", "build", "evaluate", "compare", "Recipe", "ScalesFile", "QuantizeResult", "BuildRequest"}
    with pytest.raises(AttributeError):
        q.nothing_here  # noqa: B018


def test_calibrate_then_quantize_on_the_embedded_default(tmp_path):
    scales = q.calibrate(num_images=2, methods=("uh", "minmax"))
    assert set(scales) == {"uh", "minmax"} and isinstance(scales["uh"], q.ScalesFile) and scales["uh"].num_images == 2
    scales["uh"].save(tmp_path / "s.json")
    result = q.quantize(scales=tmp_path / "s.json", config=q.Recipe(mode="symmetric"))
    assert isinstance(result, q.QuantizeResult) and isinstance(result.model, onnx.ModelProto)
    assert result.report["quantized"]["Conv"] == 57 and result.report["mode"] == "symmetric"


def test_config_refuses_what_does_not_compose():
    with pytest.raises(q.QyoloError, match="--io-dtype fp16 needs --float-dtype fp16"):
        q.quantize(scales=q.calibrate(num_images=1)["uh"], config=q.Recipe(io_dtype="fp16"))


def test_quantize_fp16_float_parts(tmp_path):
    result = q.quantize(num_images=2, config=q.Recipe(float_dtype="fp16"))
    assert result.report["float_dtype"] == "fp16"
    weights = {t.name: t.data_type for t in result.model.graph.initializer}
    assert onnx.TensorProto.FLOAT not in {d for n, d in weights.items() if not n.endswith("scales")}  # Resize scales stay fp32
    assert [o.type.tensor_type.elem_type for o in result.model.graph.output] == [onnx.TensorProto.FLOAT]


def test_evaluate_and_compare(tmp_path, coco_dir, yolov5n_onnx):
    images = sorted((coco_dir / "images").iterdir())
    qdq = q.quantize(yolov5n_onnx, images=images[:2], config=q.Recipe(bias_correction=False)).model
    onnx.save(qdq, tmp_path / "q.onnx")
    row = q.evaluate(tmp_path / "q.onnx", coco_dir / "instances.json", reference=yolov5n_onnx, num_images=3)
    assert row["images"] == 3 and 0 < row["agreement"] <= 1 and row["sqnr_db"] > 15
    table = q.compare(yolov5n_onnx, data=coco_dir / "instances.json", calib_split=2, num_images=3, methods=("uh",),
                      modes=("symmetric",), peers=False, bias_correction=False, samples=10)
    assert (table["calib_images"], table["eval_images"]) == (2, 3) and [r["label"] for r in table["rows"]] == ["fp32", "uh/symmetric"]
    with pytest.raises(q.QyoloError, match="--calib or --calib-split"):
        q.compare(yolov5n_onnx, calib=images[:2], data=coco_dir / "instances.json", calib_split=2)


def test_build_names_options_and_writes_one_engine(tmp_path):
    with pytest.raises(q.QyoloError, match="unknown build option"):
        q.build(gpu="rtx4090")
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed")
    summary = q.build(gpus=("rtx4090",), num_images=1, output=tmp_path / "x.engine")
    assert [e["engine"] for e in summary["engines"]] == [str(tmp_path / "x.engine")] and summary["quality"] is None  # 1 image: none held out
    assert json.loads((tmp_path / "x.engine.json").read_text())["options"]["float_dtype"] == "fp32"  # defaults.BUILD_FLOAT_DTYPE
