#!/usr/bin/env python3
"""Issue 18's engine comparison: the precision mix and activation traffic of TensorRT-RTX engines for the RTX 4090.

    python tools/float16_engines.py [--data ../shared/data] [--out runs/float16] [--work runs/float16/engines]

For each real model (yolov5n, fall_yolov8s), four engines built as a user would (``qyolo_trt.build`` = ``qyolo-trt
build MODEL --gpu rtx4090``, embedded calibration images):
- ``int8`` (the default: INT8 with FP16 float parts), ``int8 fp32-float`` (``--float-dtype fp32``),
- ``fp16`` (``--precision fp16``), ``nncf int8`` (NNCF's QDQ model from the same calibration images, built as given).
Engines already in WORK (with their sidecars) are reused. Writes OUT/float16_engines.json and .md: layers, layer
outputs by dtype, % Float, INT8 convs, activation MB (sum of layer outputs, per image), and the issue's checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt import build  # noqa: E402
from qyolo_trt.backends.tensorrt.report import EngineReport  # noqa: E402
from qyolo_trt.backends.tensorrt.sidecar import read_sidecar, sidecar_path  # noqa: E402
from qyolo_trt.cli.common import format_table, log  # noqa: E402
from qyolo_trt.eval.evaluate import head_outputs  # noqa: E402
from qyolo_trt.eval.peers import nncf_ptq  # noqa: E402
from qyolo_trt.fileio import json_text, write_text_atomic  # noqa: E402
from qyolo_trt.model import inspect_detector, load_onnx  # noqa: E402
from qyolo_trt.pipeline import BuildRequest, split_calib  # noqa: E402

MODELS = ("yolov5n", "fall_yolov8s")
GPU = "rtx4090"
VARIANTS = {  # name -> build options (None: NNCF's QDQ model)
    "int8": {},
    "int8 fp32-float": {"float_dtype": "fp32"},
    "fp16": {"precision": "fp16"},
    "nncf int8": None,
}
MAX_FLOAT_PCT = 5.0
COLUMNS = ["model", "engine", "layers", "Int8", "Half", "Float", "Float %", "convs INT8", "activation MB", "Float MB"]


def _engine(model: Path, variant: str, work: Path) -> Path:
    """The engine of ``variant`` in ``work``, built unless its sidecar is already there."""
    out = work / f"{model.stem}.{variant.replace(' ', '-')}.engine"
    if sidecar_path(out).is_file():
        return out
    options = VARIANTS[variant]
    if options is None:
        model = _nncf_model(model, work)
    log(f"building {out.name}")
    build(model, gpus=(GPU,), output=out, **(options or {}))
    return out


def _nncf_model(model: Path, work: Path) -> Path:
    """NNCF's QDQ model of ``model``, calibrated on the images the default build calibrates on."""
    path = work / f"{model.stem}.nncf.qdq.onnx"
    if not path.is_file():
        fp32 = load_onnx(model)
        calib, _ = split_calib(BuildRequest(model=model))
        onnx.save(nncf_ptq(model, inspect_detector(fp32, source=str(model)), calib, head_outputs(fp32)).model, path)
    return path


def _row(name: str, variant: str, engine: Path) -> dict[str, Any]:
    rep = EngineReport.from_dict(read_sidecar(engine)["report"])
    mix, total = rep.output_dtypes, sum(rep.output_dtypes.values())
    act = rep.activation_bytes_by_dtype or {}
    return {
        "model": name, "engine": variant, "layers": len(rep.layers), **{k: mix.get(k, 0) for k in ("Int8", "Half", "Float")},
        "Float %": 100 * mix.get("Float", 0) / total, "convs INT8": f"{rep.conv_int8}/{rep.conv_total}",
        "activation MB": sum(act.values()) / 1e6, "Float MB": act.get("Float", 0) / 1e6,
        "conv_int8": rep.conv_int8, "activation_bytes": rep.activation_bytes, "engine_path": str(engine),
    }


def checks(rows: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The issue's acceptance checks for one model's rows (keyed by engine variant)."""
    default = rows["int8"]
    return {
        f"Float <= {MAX_FLOAT_PCT:g}% of layer outputs": default["Float %"] <= MAX_FLOAT_PCT,
        "every quantized conv INT8 (as with fp32 float parts)": default["conv_int8"] == rows["int8 fp32-float"]["conv_int8"],
        "layers <= fp32-float engine": default["layers"] <= rows["int8 fp32-float"]["layers"],
        "activation bytes < fp16 engine": default["activation_bytes"] < rows["fp16"]["activation_bytes"],
        "activation bytes < nncf int8 engine": default["activation_bytes"] < rows["nncf int8"]["activation_bytes"],
    }


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "float16", show_default=True)
@click.option("--work", type=click.Path(path_type=Path), default=None, help="Engine folder (default: OUT/engines); existing engines are reused.")
def main(data: Path, out: Path, work: Path | None) -> None:
    work = work or out / "engines"
    work.mkdir(parents=True, exist_ok=True)
    rows, verdicts = [], {}
    for name in MODELS:
        model = data / "weights" / f"{name}.onnx"
        by_variant = {v: _row(name, v, _engine(model, v, work)) for v in VARIANTS}
        rows += by_variant.values()
        verdicts[name] = checks(by_variant)
    table = format_table(rows, COLUMNS, floatfmt=".2f")
    lines = [f"- {name}: " + "; ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in v.items()) for name, v in verdicts.items()]
    write_text_atomic(out / "float16_engines.json", json_text({"gpu": GPU, "rows": rows, "checks": verdicts}))
    write_text_atomic(out / "float16_engines.md", table + "\n\n" + "\n".join(lines) + "\n")
    click.echo(table + "\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
