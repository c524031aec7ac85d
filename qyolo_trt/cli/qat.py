"""`qyolo-trt qat`: FP32 ONNX (or .pt, exported first) + images -> UH-calibrated QDQ model -> quantization-aware fine-tuning -> QDQ ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import onnx
from click.core import ParameterSource

from ..defaults import (BITS_RANGE, DEFAULT_BITS, DEFAULT_METHOD, QAT_BATCH, QAT_BIAS_LR, QAT_CROP, QAT_EPOCHS, QAT_KEEP_BEST, QAT_LR,
                        QAT_QC, QAT_QC_EPOCHS, QAT_RECONSTRUCT, QAT_SCALE_LR, RECONSTRUCT_ITERS)  # fmt: skip
from ..errors import QyoloError
from ..fileio import refuse_overwrite, write_bytes_atomic
from ..qdq.passes.lowbit import width_label
from .common import FiniteFloatRange, emit, json_option, log


@click.command("qat")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--images", required=True, help="Training (and calibration) images: folder, YOLO dataset, .txt list, COCO json.")
@click.option("--num-images", type=click.IntRange(1), default=None, help="At most this many images.")
@click.option("--epochs", type=click.IntRange(0), default=QAT_EPOCHS, show_default=True, help="Passes over the images.")
@click.option("--batch", type=click.IntRange(1), default=QAT_BATCH, show_default=True, help="Images per step.")
@click.option("--crop", type=FiniteFloatRange(0, 1, min_open=True), default=QAT_CROP, show_default=True,
              help="Random crop side per step, as a fraction of the image (1: whole images).")
@click.option("--bits", type=click.IntRange(*BITS_RANGE), default=DEFAULT_BITS, show_default=True,
              help="W{b}A{b}: calibrate and quantize for this width, then fine-tune on its grid.")
@click.option("--reconstruct/--no-reconstruct", default=QAT_RECONSTRUCT, show_default=True,
              help="Start from the reconstructed model (quantize --reconstruct on IMAGES: learned rounding + bias refit), not plain UH.")
@click.option("--reconstruct-iters", type=click.IntRange(0), default=RECONSTRUCT_ITERS, show_default=True,
              help="Reconstruction steps per block (with --reconstruct).")
@click.option("--start", "start_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Fine-tune this QDQ model of MODEL (e.g. `quantize --reconstruct`'s output) instead of quantizing MODEL here; "
                   "its widths are kept (no --bits / --reconstruct).")
@click.option("--lr", type=FiniteFloatRange(0), default=QAT_LR, show_default=True, help="Adam step of the weights, in grid steps.")
@click.option("--scale-lr", type=FiniteFloatRange(0), default=QAT_SCALE_LR, show_default=True,
              help="Adam step of the activation step sizes (LSQ), relative to each (0: the calibrated steps stay).")
@click.option("--bias-lr", type=FiniteFloatRange(0), default=QAT_BIAS_LR, show_default=True, help="Adam step of the quantized convs' float biases.")
@click.option("--ema/--no-ema", default=True, show_default=True, help="Export an exponential moving average of the weights.")
@click.option("--qc/--no-qc", default=QAT_QC, show_default=True, help="Correction phase after QAT: weights frozen, step sizes and biases refit (at --scale-lr / --bias-lr).")
@click.option("--keep-best/--keep-last", default=QAT_KEEP_BEST, show_default=True,
              help="Export the parameters (the start's or an epoch's) with the lowest distillation loss on the whole training images, "
                   "not the last epoch's.")
@click.option("--qc-epochs", type=click.IntRange(0), default=QAT_QC_EPOCHS, show_default=True, help="Passes of the correction phase.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the image order and crops.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Torch threads (default: torch's own).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint written after every epoch (default: OUTPUT.ckpt, removed when the run completes).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an interrupted run with the same settings.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output QDQ ONNX path.")
@json_option
def qat_cmd(model: Path, images: str, num_images: int | None, epochs: int, batch: int, crop: float, bits: int, reconstruct: bool,
            reconstruct_iters: int, start_path: Path | None, lr: float, scale_lr: float, bias_lr: float, ema: bool, qc: bool, keep_best: bool, qc_epochs: int, seed: int, threads: int | None, checkpoint: Path | None, resume: bool, output: Path, as_json: bool) -> None:  # fmt: skip
    """Fine-tune MODEL's (.onnx, or an Ultralytics .pt exported first) UH-quantized (by default also reconstructed) QDQ model on IMAGES by distillation from MODEL itself (no labels needed)."""
    ckpt = checkpoint or output.with_name(f"{output.name}.ckpt")
    refuse_overwrite([output, ckpt], [model])
    if resume and not ckpt.is_file():
        raise QyoloError(f"--resume: no checkpoint at {ckpt}")
    from ..data import list_images
    from ..data.feeds import load_feeds
    from ..export import load_source
    from ..torchq.qat import qat

    fp32 = load_source(model)
    paths = list_images(images, limit=num_images)
    if start_path is None:
        start, report = _quantized(fp32, paths, bits, reconstruct, reconstruct_iters, seed)
    else:
        start, report = _given_start(start_path, fp32)
    bits = report.get("bits", bits)
    log(f"qat: {len(paths)} images, {epochs} epochs, {width_label(report)}, checkpoint {ckpt}")
    result, stats = qat(start, fp32, load_feeds(fp32, paths, len(paths)), epochs=epochs, batch=batch, crop=crop, lr=lr, scale_lr=scale_lr,
                        bias_lr=bias_lr, ema=ema, qc=qc, qc_epochs=qc_epochs, keep_best=keep_best, seed=seed, checkpoint=ckpt, resume=resume, threads=threads, on_epoch=_log_epoch)  # fmt: skip
    write_bytes_atomic(output, result.SerializeToString())
    if checkpoint is None:
        ckpt.unlink(missing_ok=True)
    log(f"qat: wrote {output} in {stats['seconds']:.1f} s")
    emit({"model": str(model), "images": len(paths), "bits": bits, "widths": width_label(report), "output": str(output),
          "start": str(start_path) if start_path else None, "reconstruction": report.get("reconstruction"), "stats": stats}, as_json, _text)  # fmt: skip


def _quantized(fp32: onnx.ModelProto, paths: list[Path], bits: int, reconstruct: bool, iters: int, seed: int) -> tuple[onnx.ModelProto, dict]:
    """The start: MODEL UH-calibrated and quantized at ``bits`` on the images (and reconstructed)."""
    from ..api import calibrate, quantize
    from ..qdq.config import QuantizeConfig

    scales = calibrate(fp32, paths, methods=(DEFAULT_METHOD,), bits=bits)[DEFAULT_METHOD]
    config = QuantizeConfig(bits=bits, reconstruct=reconstruct, reconstruct_images=paths, reconstruct_iters=iters, seed=seed)
    if reconstruct:
        log(f"qat: reconstructing the start ({iters} steps per block)")
    result = quantize(fp32, scales, config=config)
    return result.model, result.report


def _given_start(path: Path, fp32: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """``--start``: a QDQ model ``quantize`` wrote for MODEL (same inputs and outputs), and its report."""
    ctx = click.get_current_context()
    given = [f"--{p}" for p in ("bits", "reconstruct", "reconstruct_iters") if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE]
    if given:
        raise QyoloError(f"--start: the start model's own widths and reconstruction are kept; drop {', '.join(given).replace('_', '-')}")
    from ..model import load_onnx
    from ..qdq.quantize import read_report

    start = load_onnx(path)
    report = read_report(start)
    names = lambda m: ([i.name for i in m.graph.input], [o.name for o in m.graph.output])  # noqa: E731
    if report is None or names(start) != names(fp32):
        raise QyoloError(f"--start {path}: not a QDQ model that `qyolo-trt quantize` wrote for this MODEL")
    return start, report


def _log_epoch(row: dict[str, Any]) -> None:
    whole = f", whole-image loss {row['whole_loss']:.4g}" if "whole_loss" in row else ""
    log(f"qat: epoch {row['epoch'] + 1}: loss {row['loss']:.4g}{whole}, {row['flipped_weights']} weights flipped")


def _text(result: dict[str, Any]) -> str:
    s = result["stats"]
    kept = "the start" if s["kept_epoch"] < 0 else f"epoch {s['kept_epoch'] + 1}"
    return (f"{result['output']}  ({result['widths']}, {result['images']} images, {len(s['epochs'])} epochs, kept {kept})\n"
            f"distillation loss on {s['settings']['batch']} images: {s['loss_before']:.4g} -> {s['loss_after']:.4g}")  # fmt: skip
