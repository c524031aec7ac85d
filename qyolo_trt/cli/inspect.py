"""`qyolo-trt inspect`: what a QDQ ONNX model or an engine contains, with the lint of the target it was placed for."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from ..defaults import TARGETS
from ..errors import QyoloError
from ..model import load_onnx
from ..qdq.describe import describe_qdq
from ..qdq.passes.lowbit import width_label
from .common import emit, format_table, json_option


@click.command("inspect")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Exit with code 1 when the lint finds errors (default: report only, exit 0).")
@click.option("--target", type=click.Choice(TARGETS), default=None,
              help="Lint against this target's rules (default: the target the model was placed for; tensorrt for other tools' models).")
@json_option
def inspect_cmd(artifact: Path, strict: bool, target: str | None, as_json: bool) -> None:
    """Describe ARTIFACT: for .onnx, op counts, quantized ops, Q/DQ counts, float-kept nodes and why, the target it was
    placed for and a lint of that target's rules (TensorRT's explicit quantization by default); for .engine, its
    sidecar report."""
    if artifact.suffix == ".engine":
        sidecar = importlib.import_module("qyolo_trt.backends.tensorrt.sidecar")
        emit(sidecar.describe_engine(artifact), as_json, sidecar.summary_text)
        return
    if artifact.suffix != ".onnx":
        raise QyoloError(f"{artifact}: expected an .onnx model or an .engine file")
    result = {"artifact": str(artifact), **describe_qdq(load_onnx(artifact), target)}
    emit(result, as_json, _text)
    if strict and result["lint_errors"]:
        sys.exit(1)  # click's non-standalone mode would swallow click.exceptions.Exit


def _text(result: dict[str, Any]) -> str:
    ops = [{"op": op, "count": n, "quantized": result["quantized_ops"].get(op, "")} for op, n in result["ops"].items()]
    lines = [result["artifact"], format_table(ops, ["op", "count", "quantized"])]
    lines.append(f"QuantizeLinear {result['qdq']['QuantizeLinear']}, DequantizeLinear {result['qdq']['DequantizeLinear']}")
    report = result["report"]
    if report:
        lines.append(f"rewrite: placed for {result['target']}, mode {report['mode']}, scales method {report['method']}, {width_label(report)}")
        if bc := report.get("bias_correction"):
            lines.append(f"bias correction: {bc['convs']} convs on {bc['images']} images")
        if fb := report.get("fallback"):
            lines.append(f"float fallback ({fb['policy']}): {', '.join(u['unit'] for u in fb['layers']) or 'none'}")
        lines += [f"  float: {e['node']} ({e['op']}): {e['reason']}" for e in report["float_nodes"]]
    issues = result["lint"]
    if not any(result["qdq"].values()):
        lines.append("lint: not a QDQ model (no QuantizeLinear/DequantizeLinear): nothing to check")
    else:
        verdict = "clean" if not issues else f"{result['lint_errors']} error(s), {len(issues) - result['lint_errors']} warning(s)"
        lines.append(f"lint: {verdict} ({result['target']} rules)")
    lines += [f"  {i['severity']} {i['code']} {i['node']}: {i['message']}" for i in issues]
    return "\n".join(lines)
