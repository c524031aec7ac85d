"""`qyolo-trt bench`: interleaved latency of one or more artifacts on one backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..backends import RUNNERS
from ..bench import HINTS, OV_PRECISIONS, plan, run_bench
from .common import emit, format_table, json_option, log

COLUMNS = ["label", "precision", "conv_int8", "p50_ms", "p90_ms", "p99_ms", "img/s"]


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(list(RUNNERS)), default=None, help="Runtime for every artifact (default: per artifact, trt for .engine files, else ort).")
@click.option("--batch", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Batch size of the synthetic input (above 1: a dynamic-batch model, `export --dynamic-batch`, or one of that static batch).")
@click.option("--hint", type=click.Choice(HINTS), default=HINTS[0], show_default=True,
              help="OpenVINO performance hint: throughput runs its optimal number of infer requests in parallel each round "
                   "(ratios then by images/s).")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=10, show_default=True, help="Untimed rounds before timing.")
@click.option("--iters", type=click.IntRange(1, 1_000_000), default=100, show_default=True, help="Timed rounds (each round runs every artifact once).")
@click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True, help="Intra-op threads (0: the backend's default).")
@click.option(
    "--ov-precision",
    type=click.Choice(OV_PRECISIONS),
    default="auto",
    show_default=True,
    help="OpenVINO float precision: auto = first artifact with f32 forced and in OpenVINO's default, the rest default.",
)
@json_option
def bench_cmd(
    artifacts: tuple[Path, ...], backend: str | None, batch: int, hint: str, warmup: int, iters: int, threads: int, ov_precision: str, as_json: bool
) -> None:
    """Time ARTIFACTS interleaved (round-robin) in one run: p50/p90/p99 latency, throughput and the
    speed-up against the first artifact (its p50 / this p50); on OpenVINO against both of its rows."""
    variants = plan(artifacts, backend, threads, ov_precision, hint)
    result = run_bench(variants, batch=batch, warmup=warmup, iters=iters)
    backends = ", ".join(dict.fromkeys(v.backend for v in variants))
    log(f"bench: {len(variants)} variant(s) on {backends}, {warmup} warmup + {iters} timed rounds, batch {batch}, {hint} hint")
    emit(result, as_json, _text)


def _text(result: dict[str, Any]) -> str:
    rows = [
        {
            "label": r["label"],
            "precision": _precision(r["runner"]),
            "conv_int8": _conv_int8(r["runner"]),
            "p50_ms": r["p50_ms"],
            "p90_ms": r["p90_ms"],
            "p99_ms": r["p99_ms"],
            "img/s": r["throughput"],
            **{f"x vs {b}": x for b, x in r["ratios"].items()},
        }
        for r in result["rows"]
    ]
    columns = COLUMNS + [f"x vs {b}" for b in result["baselines"]]
    by = "this row's img/s / B's img/s" if result["hint"] == "throughput" else "B's p50 / this row's p50"
    text = format_table(rows, columns, floatfmt=".2f") + f"\n(x vs B = {by}; {result['iters']} interleaved rounds)"
    return "\n".join([text, *_slower_notes(result)])


def _slower_notes(result: dict[str, Any]) -> list[str]:
    """One plain line per INT8 row that is not faster than the last baseline when that is a float model (the FP32
    model in the runtime's default precision)."""
    base = result["baselines"][-1]
    default = next(r for r in result["rows"] if r["label"] == base)
    if _int8_convs(default["runner"]):
        return []
    return [f"note: {r['label']} ({_precision(r['runner'])}) is not faster than {base} ({_precision(default['runner'])}): "
            f"{r['ratios'][base]:.2f}x; the FP32 model is the better choice on this machine"
            for r in result["rows"] if _int8_convs(r["runner"]) and r["ratios"][base] <= 1.0]


def _int8_convs(described: dict[str, Any]) -> int:
    """Convolutions OpenVINO runs in int8 (0 when the runtime does not say)."""
    counts = described.get("conv_precisions") or {}
    return counts.get("i8", 0) + counts.get("u8", 0)


def _precision(described: dict[str, Any]) -> str:
    """What the row runs in: "int8 + bf16" when OpenVINO runs convs in int8 and the rest in bf16, not just "bf16"."""
    floats = described.get("execution_precision", "-")
    return f"int8 + {floats}" if _int8_convs(described) else floats


def _conv_int8(described: dict[str, Any]) -> str:
    counts = described.get("conv_precisions")
    return f"{_int8_convs(described)}/{sum(counts.values())}" if counts else "-"
