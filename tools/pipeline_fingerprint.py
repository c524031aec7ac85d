#!/usr/bin/env python3
"""Byte-identity guard for the quantize pipeline: sha256 of the scales files and QDQ models of the README's commands.

    python tools/pipeline_fingerprint.py [--out DIR] > hashes.txt

Runs `qyolo-trt calibrate` / `qyolo-trt quantize` (each in its own process, exactly as a user would) on the embedded
default (yolov5n + calib_data/) and prints one ``sha256  name`` line per artifact. Two trees that print the same lines
write the same bytes for every command below (a restructure of the pipeline must not change them).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import click

CALIBRATE = {"scales.json": [], "scales4.json": ["--bits", "4"]}
QUANTIZE = {  # output name -> (scales file, quantize options)
    "symmetric": ("scales.json", ["--mode", "symmetric"]),
    "shifted": ("scales.json", ["--mode", "shifted"]),
    "shifted_bc": ("scales.json", ["--mode", "shifted", "--bias-correction"]),
    "asymmetric": ("scales.json", ["--mode", "asymmetric"]),
    "bits4_symmetric": ("scales4.json", ["--bits", "4", "--mode", "symmetric"]),
    "fallback2": ("scales.json", ["--auto-fallback", "2"]),
    "fp16": ("scales.json", ["--float-dtype", "fp16"]),
    "build_recipe": ("scales.json", ["--mode", "shifted", "--bias-correction", "--float-dtype", "fp16"]),
}


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "qyolo_trt", *args], check=True, capture_output=True, timeout=900)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Keep the artifacts in this folder (default: a temp dir).")
def main(out: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="qyolo-fingerprint-") as tmp:
        work = out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name, options in CALIBRATE.items():
            _cli("calibrate", *options, "-o", str(work / name))
            print(f"{_sha(work / name)}  {name}", flush=True)
        for name, (scales, options) in QUANTIZE.items():
            path = work / f"{name}.qdq.onnx"
            _cli("quantize", "--scales", str(work / scales), *options, "-o", str(path))
            print(f"{_sha(path)}  {path.name}", flush=True)


if __name__ == "__main__":
    main()
