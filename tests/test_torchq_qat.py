"""torchq.qat: QAT lowers the distillation loss, exports exactly what it trained (ONNX Runtime agrees), starts from the
model it is given (learning rates 0 export that model), exports the parameters with the lowest whole-image loss (the
start when training only raised it), keeps shared scales shared, resumes from a checkpoint to the same result as an
uninterrupted run, and `qat --reconstruct` starts from the reconstructed model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from qdq_graphs import observed_scales, tensor_values, tiny_detector

from conftest import assert_clean_error, run_cli, shared_path
from qyolo_trt.defaults import default_calib
from qyolo_trt.errors import QyoloError
from qyolo_trt.qdq import lint, quantize
from qyolo_trt.qdq.passes.lowbit import lower_bits

torch = pytest.importorskip("torch")
from qyolo_trt.torchq.qat import qat  # noqa: E402

RNG = np.random.default_rng(3)
FEEDS = [{"images": RNG.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(6)]
FAST = {"epochs": 3, "batch": 2, "crop": 1.0, "lr": 0.05, "scale_lr": 1e-3, "bias_lr": 1e-3, "qc_epochs": 1, "threads": 1}  # one thread: the same sums in any test order


def _start(bits: int = 8) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    fp32 = tiny_detector()
    qdq = quantize(fp32, observed_scales(fp32, FEEDS[0]), mode="shifted" if bits == 8 else "symmetric").model
    return (lower_bits(qdq, fp32, bits) if bits != 8 else qdq), fp32


def _ort_loss(model: onnx.ModelProto, fp32: onnx.ModelProto, feeds: list[dict], targets: list[str]) -> float:
    """The distillation loss (sum over targets of noise / signal energy) from ONNX Runtime's values."""
    got = [tensor_values(model, f) for f in feeds]
    ref = [tensor_values(fp32, f) for f in feeds]
    total = 0.0
    for t in targets:
        a, b = (np.concatenate([v[t] for v in vals]).astype(np.float64) for vals in (got, ref))
        total += np.square(a - b).mean() / np.square(b).mean()
    return total


@pytest.mark.parametrize("bits", [8, 4])
def test_qat_lowers_the_loss_and_onnx_runtime_agrees(bits):
    qdq, fp32 = _start(bits)
    model, stats = qat(qdq, fp32, FEEDS, **FAST)
    assert stats["loss_after"] < 0.95 * stats["loss_before"], stats  # 3 epochs of 3 steps on 6 tiny images
    assert stats["targets"] == ["head_out", "cv4_act"]
    # the exported model is the trained one: ONNX Runtime's loss on the probe images equals torch's
    assert _ort_loss(model, fp32, FEEDS[: FAST["batch"]], stats["targets"]) == pytest.approx(stats["loss_after"], rel=1e-3)
    assert lint(model) == lint(qdq)  # the start's lint report (clean at 8 bits; the 4-bit simulation is ORT-only)
    assert bits != 8 or not lint(model)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    start = {t.name: onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer}
    assert any(not np.array_equal(inits[n], start[n]) for n in start if n.endswith("_qscale")), "no step size was learned"
    assert inits["images_qscale"] == start["images_qscale"]  # the image input's step stays the calibrated one
    assert any(not np.array_equal(inits[n], start[n]) for n in start if n.endswith("_int8")), "no weight integer moved"


def test_zero_learning_rates_export_the_start_model_with_its_own_rounding():
    """The lower bound: with nothing learned, QAT (EMA and QC on) returns its start, and a start whose integers are not
    round-to-nearest (a reconstructed model's) keeps them: the latent weights start on the model's integers."""
    qdq, fp32 = _start()
    inits = {t.name: t for t in qdq.graph.initializer}
    name = next(n for n in inits if n.endswith("_int8") and onnx.numpy_helper.to_array(inits[n]).size > 8)
    q = onnx.numpy_helper.to_array(inits[name]).copy()
    q.flat[:8] = np.clip(q.flat[:8].astype(np.int64) + np.array([1, -1] * 4), -127, 127)  # 8 weights rounded "the other way"
    inits[name].CopyFrom(onnx.numpy_helper.from_array(q, name))
    model, stats = qat(qdq, fp32, FEEDS, **{**FAST, "lr": 0.0, "scale_lr": 0.0, "bias_lr": 0.0})
    got = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for n, t in inits.items():  # every value, biases included: the shift fold is recomputed exactly as it was taken out
        assert np.array_equal(got[n], onnx.numpy_helper.to_array(t)), n
    assert stats["loss_after"] == stats["loss_before"] and stats["flipped_weights"] == 0


def _ints(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_int8")}


def test_keep_best_returns_the_start_when_training_only_raises_the_loss():
    """A step of 3 grid units flips weights at random: every epoch's whole-image loss is above the start's, so
    ``keep_best`` exports the start's integers and ``keep_last`` the damaged ones; the reported losses are ONNX
    Runtime's on all the images."""
    qdq, fp32 = _start()
    rough = {**FAST, "lr": 3.0, "scale_lr": 0.0, "bias_lr": 0.0, "ema": False, "qc": False}
    best, stats = qat(qdq, fp32, FEEDS, **rough)
    last, last_stats = qat(qdq, fp32, FEEDS, **rough, keep_best=False)
    whole = [row["whole_loss"] for row in stats["epochs"]]
    assert stats["kept_epoch"] == -1 and min(whole) > stats["whole_loss_start"] == stats["whole_loss_kept"], stats
    assert all(np.array_equal(a, b) for a, b in zip(_ints(best).values(), _ints(qdq).values()))
    assert any(not np.array_equal(a, b) for a, b in zip(_ints(last).values(), _ints(qdq).values()))
    assert last_stats["kept_epoch"] == FAST["epochs"] - 1 and "whole_loss" not in last_stats["epochs"][0]
    targets = stats["targets"]
    assert _ort_loss(best, fp32, FEEDS, targets) == pytest.approx(stats["whole_loss_start"], rel=1e-3)
    assert _ort_loss(last, fp32, FEEDS, targets) == pytest.approx(whole[-1], rel=1e-3)


def test_keep_best_keeps_the_epoch_with_the_lowest_whole_image_loss():
    qdq, fp32 = _start()
    model, stats = qat(qdq, fp32, FEEDS, **FAST)
    whole = [row["whole_loss"] for row in stats["epochs"]]
    assert stats["whole_loss_kept"] == min([stats["whole_loss_start"], *whole]) < stats["whole_loss_start"]
    assert _ort_loss(model, fp32, FEEDS, stats["targets"]) == pytest.approx(stats["whole_loss_kept"], rel=1e-3)


def test_cli_reconstruct_switch_starts_from_the_reconstructed_model(tmp_path):
    model, images = shared_path("weights/yolov5n.onnx"), default_calib()
    common = ["--images", images, "--num-images", "2", "-o"]
    proc = run_cli("qat", model, "--reconstruct", "--reconstruct-iters", "1", "--epochs", "0", "--no-qc", "--json", *common, tmp_path / "qat.onnx")
    assert proc.returncode == 0, proc.stderr
    rc = json.loads(proc.stdout)["reconstruction"]
    assert rc["iters"] == 1 and rc["images"] == 2 and rc["weights"] > 0
    assert run_cli("quantize", model, *common, tmp_path / "ptq.onnx").returncode == 0  # the same UH start, not reconstructed
    ints = [{t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / f).graph.initializer if t.name.endswith("_int8")}
            for f in ("qat.onnx", "ptq.onnx")]  # fmt: skip
    assert ints[0].keys() == ints[1].keys() and any(not np.array_equal(ints[0][n], ints[1][n]) for n in ints[0])  # rounding kept


def test_cli_takes_an_ultralytics_checkpoint(tmp_path):
    """`qat MODEL.pt` exports the checkpoint first (as `build` does) and fine-tunes the exported graph: the result is the
    QDQ model of `export`'s ONNX, same inputs and outputs, lint clean."""
    pytest.importorskip("ultralytics", reason="export extra not installed (tools/install_export.sh)")
    pt = shared_path("weights/fall_yolov8s.pt")
    proc = run_cli("qat", pt, "--images", default_calib(), "--num-images", "1", "--no-reconstruct", "--epochs", "0", "--json",
                   "-o", tmp_path / "qat.onnx")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["widths"] == "W8A8"
    assert run_cli("export", pt, "-o", tmp_path / "fp32.onnx").returncode == 0
    names = lambda m: ([i.name for i in m.graph.input], [o.name for o in m.graph.output])  # noqa: E731
    qat_model = onnx.load(tmp_path / "qat.onnx")
    assert names(qat_model) == names(onnx.load(tmp_path / "fp32.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in qat_model.graph.node) and not lint(qat_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "qat.onnx"]  # no checkpoint or export left behind


def test_cli_start_fine_tunes_the_given_model(tmp_path):
    """`qat --start PTQ.onnx` trains the model it is given (0 epochs: exports its integers and scales unchanged), keeps its
    widths, and refuses what contradicts it (--bits) and models that `quantize` did not write for MODEL."""
    model, images = shared_path("weights/yolov5n.onnx"), default_calib()
    common = ["--images", images, "--num-images", "2"]
    assert run_cli("quantize", model, *common, "--act-bits", "4", "-o", tmp_path / "ptq.onnx").returncode == 0
    proc = run_cli("qat", model, *common, "--start", tmp_path / "ptq.onnx", "--epochs", "0", "--json", "-o", tmp_path / "qat.onnx")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["widths"] == "W8A4"
    values = [{t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / f).graph.initializer} for f in ("ptq.onnx", "qat.onnx")]
    assert values[0].keys() == values[1].keys() and all(np.array_equal(values[0][n], values[1][n]) for n in values[0])
    assert_clean_error(run_cli("qat", model, *common, "--start", tmp_path / "ptq.onnx", "--bits", "4", "-o", tmp_path / "q.onnx"), "--bits")
    assert_clean_error(run_cli("qat", model, *common, "--start", model, "-o", tmp_path / "q.onnx"), "not a QDQ model")
    assert not (tmp_path / "q.onnx").exists()


def test_shared_concat_scales_stay_shared():
    qdq, fp32 = _start()
    model, _ = qat(qdq, fp32, FEEDS, **FAST)
    inits = {t.name: float(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer if t.name.endswith("_qscale")}
    group = [inits[f"{t}_qscale"] for t in ("res_out", "pool1_out", "pool2_out") if f"{t}_qscale" in inits]
    assert len(group) >= 2 and len(set(group)) == 1, group
    assert group[0] != float(onnx.numpy_helper.to_array(next(t for t in qdq.graph.initializer if t.name == "res_out_qscale")))


def test_interrupted_run_resumes_to_the_same_model(tmp_path):
    qdq, fp32 = _start()
    whole, whole_stats = qat(qdq, fp32, FEEDS, **FAST)
    ckpt = tmp_path / "run.ckpt"

    def stop(row: dict) -> None:
        if row["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        qat(qdq, fp32, FEEDS, **FAST, checkpoint=ckpt, on_epoch=stop)
    assert ckpt.is_file() and [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temp file left behind
    resumed, stats = qat(qdq, fp32, FEEDS, **FAST, checkpoint=ckpt, resume=True)
    assert resumed.SerializeToString() == whole.SerializeToString()
    assert stats["epochs"] == whole_stats["epochs"]
    with pytest.raises(QyoloError, match="another run"):
        qat(qdq, fp32, FEEDS, **{**FAST, "lr": 0.01}, checkpoint=ckpt, resume=True)


def test_flip_counter_and_ema_known_answers():
    from qyolo_trt.torchq.ema import FlipCounter, ParamEMA

    counter = FlipCounter()
    for q in ([0, 1, 2], [1, 1, 2], [0, 1, 2], [0, 1, 3]):  # weight 0 flips twice, weight 2 once
        counter.observe([torch.tensor(q)])
    assert (counter.weights, counter.events) == (2, 3)
    p = torch.nn.Parameter(torch.zeros(1))
    ema = ParamEMA([p], decay=0.5)
    for value in (1.0, 1.0):
        p.data.fill_(value)
        ema.update()  # keep min(0.5, 2/11) = 2/11, then min(0.5, 3/12) = 1/4
    ema.apply()
    assert float(p.detach()) == pytest.approx(1 - (2 / 11) * (1 / 4))


def test_cli_bad_input_is_one_error_line(tmp_path):
    model = shared_path("weights/yolov5n.onnx")
    assert_clean_error(run_cli("qat", model, "--images", tmp_path / "missing", "-o", tmp_path / "q.onnx"), "missing")
    assert_clean_error(run_cli("qat", model, "--images", tmp_path, "--resume", "-o", tmp_path / "q.onnx"), "no checkpoint")
    assert_clean_error(run_cli("qat", model, "--images", tmp_path, "--crop", "0", "-o", tmp_path / "q.onnx"), "crop")
