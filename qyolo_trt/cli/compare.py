"""`qyolo-trt compare`: FP32 vs every calibration method (and peers) on the same images, one table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from ..defaults import BITS_RANGE, DEFAULT_TARGET, METHODS, MODES, TARGETS, RECONSTRUCT_ITERS
from ..errors import QyoloError
from ..fileio import write_json_atomic
from ..lazy import lazy_import
from .common import emit, format_table, json_option, log, post_options, split_csv


@click.command("compare")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--calib", type=click.Path(path_type=Path), default=None, help="Calibration images (default: the embedded calib_data/).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Evaluation set: COCO instances json or YOLO set (images/ + labels/).")
@click.option("--methods", default=",".join(METHODS), show_default=True, help="Calibration methods, comma separated.")
@click.option("--modes", default=",".join(MODES), show_default=True, help="QDQ modes (shifted/asymmetric rows for UH only).")
@click.option("--calib-split", type=click.IntRange(1), default=None,
              help="Calibrate on the first N images of --data and evaluate on the rest (instead of --calib).")
@click.option("--num-calib", type=click.IntRange(1), default=None, help="Use the first N calibration images.")
@click.option("--num-images", type=click.IntRange(1), default=None, help="Evaluate on the first N images.")
@click.option("--allow-overlap", is_flag=True, help="Allow calibration images among the evaluation images.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Also UH TensorRT rows with bias correction on the calibration images (+bc), as `build` does.")
@click.option("--peers/--no-peers", default=True, show_default=True, help="Add ONNX Runtime's quantize_static as a row.")
@click.option("--targets", default="", help=f"Also a row per CPU target placement ({', '.join(t for t in TARGETS if t != DEFAULT_TARGET)}; "
              "comma separated), timed on its runtime against the FP32 model in that runtime's default precision.")
@click.option("--speed-iters", type=click.IntRange(0, 100_000), default=30, show_default=True,
              help="Interleaved rounds of the --targets timing (0: accuracy only).")
@click.option("--bootstrap", "samples", type=click.IntRange(10), default=1000, show_default=True, help="Bootstrap resamplings for the drop's 95% CI.")
@post_options
@click.option("--bits", "low_bits", default="",
              help="Also low-bit rows (fake-quantized; symmetric/asymmetric) at these widths: b for W{b}A{b}, wXaY for split widths, e.g. 4,6,w8a4,w4a8.")
@click.option("--auto-fallback", "fallback_ks", default="",
              help="Also rows of the first method (symmetric) with the K most sensitive layers float, e.g. 1,2,4,8 (ranked on 8 calibration images).")
@click.option("--reconstruct", "recon_bits", default="",
              help="Also UH rows with reconstruction (+rc) at these widths, e.g. 8,4,w8a4,w4a8 (8: shifted; below: symmetric W{w}A{a}). Needs torch.")
@click.option("--reconstruct-iters", type=click.IntRange(0, 100_000), default=RECONSTRUCT_ITERS, show_default=True, help="Steps per block for --reconstruct rows.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Also write the result JSON here (atomically).")
@json_option
def compare_cmd(
    model: Path | None, calib: Path | None, data: Path, calib_split: int | None, methods: str, modes: str, num_calib: int | None, num_images: int | None,
    allow_overlap: bool, bias_correction: bool, peers: bool, targets: str, speed_iters: int, samples: int, conf: float, iou: float, max_det: int, low_bits: str, fallback_ks: str,
    recon_bits: str, reconstruct_iters: int, output: Path | None, as_json: bool,
) -> None:
    """Calibrate MODEL once with every method, quantize each in the requested modes, and evaluate FP32 and
    every QDQ model on the same --data images: label mAP with the drop's paired-bootstrap 95% CI, FP32
    agreement, head SQNR, calibration seconds; with --targets, each target's INT8 speed against its runtime's FP32
    default, and a plain note where INT8 is not faster. Calibration and evaluation images must be disjoint."""
    from ..api import compare
    from ..eval.compare import table_columns, table_rows
    from ..eval.decode import PostProcess
    from ..fileio import refuse_overwrite

    refuse_overwrite([output], [model, calib, data])
    method_list, mode_list, target_list = split_csv(methods), split_csv(modes), split_csv(targets)
    if not method_list or not mode_list:
        raise QyoloError("--methods and --modes need at least one name each")
    if bad := [t for t in target_list if t not in TARGETS or t == DEFAULT_TARGET]:
        raise QyoloError(f"--targets takes {', '.join(t for t in TARGETS if t != DEFAULT_TARGET)} (got {', '.join(bad)}); "
                         f"the {DEFAULT_TARGET} placement is every --modes row")
    result = compare(
        model,
        calib,
        data,
        num_calib=num_calib,
        calib_split=calib_split,
        num_images=num_images,
        methods=method_list,
        modes=mode_list,
        peers=peers,
        allow_overlap=allow_overlap,
        post=PostProcess(conf=conf, iou=iou, max_det=max_det),
        samples=samples,
        extra_variants=_extra_rows(method_list, mode_list, low_bits, fallback_ks, recon_bits, reconstruct_iters),
        bias_correction=bias_correction,
        targets=target_list,
        speed_iters=speed_iters,
    )
    if output is not None:
        write_json_atomic(output, result)
        log(f"compare: wrote {output}")
    emit(result, as_json, lambda r: _text(r, table_rows(r), table_columns(r)))


def _extra_rows(methods: list[str], modes: list[str], low_bits: str, fallback_ks: str, recon_bits: str, recon_iters: int):
    """The low-bit, float-fallback and reconstruction rows (``qyolo_trt.analysis.rows``), or None."""
    widths, rwidths = parse_widths("--bits", low_bits), parse_widths("--reconstruct", recon_bits)
    try:
        ks = [int(k) for k in split_csv(fallback_ks)]
    except ValueError:
        raise QyoloError("--auto-fallback takes comma-separated integers") from None
    if bad := [k for k in ks if k < 0]:
        raise QyoloError(f"--auto-fallback must be >= 0 (got {bad})")
    if not widths and not ks and not rwidths:
        return None
    from ..analysis.rows import chained, fallback_rows, lowbit_rows, reconstruct_rows

    if rwidths:
        lazy_import("torch", "export", "torch (needed by --reconstruct)")

    return chained(*([lowbit_rows(methods, modes, widths)] if widths else []), *([fallback_rows(methods[0], ks)] if ks else []),
                   *([reconstruct_rows(rwidths, recon_iters)] if rwidths else []))


def parse_widths(option: str, text: str) -> list[tuple[int, int]]:
    """(weight bits, activation bits) of each item of a width list: ``b`` (W{b}A{b}) or ``wXaY``, each in BITS_RANGE."""
    out = []
    for item in split_csv(text):
        found = re.fullmatch(r"(\d+)|w(\d+)a(\d+)", item.lower())
        if found is None:
            raise QyoloError(f"{option} takes comma-separated widths, b (W{{b}}A{{b}}) or wXaY, e.g. 4,w8a4 (got {item!r})")
        b, w, a = found.groups()
        pair = (int(b), int(b)) if b else (int(w), int(a))
        if not all(BITS_RANGE[0] <= x <= BITS_RANGE[1] for x in pair):
            raise QyoloError(f"{option} widths must be in {BITS_RANGE[0]}..{BITS_RANGE[1]} (got {item})")
        out.append(pair)
    return out


def _text(result: dict[str, Any], rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = f"{result['model']}: calibrated on {result['calib_images']} images, evaluated on {result['eval_images']} ({result['data']})"
    return "\n".join([head, format_table(rows, columns), *(f"note: {n}" for n in result.get("notes", []))])
