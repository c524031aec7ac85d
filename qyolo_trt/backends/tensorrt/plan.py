"""Engine planning: which engines a build makes, for which GPU targets, in which precision, from which ONNX model.

TensorRT-RTX builds ahead of time for chosen targets (default: RTX 4090 and T4); it has no INT8 kernels for Turing
(sm75), so with INT8 the Turing targets get their own FP16 engine from the FP32 model (mixing sm75 into the portable
engine would turn every INT8 conv into float fake-quantisation). Standard TensorRT builds for the local GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ...errors import QyoloError
from .gpus import RTX_NO_INT8, parse_targets, rtx_groups
from .runtime import require_gpu

DEFAULT_RTX_TARGETS = ("sm89", "sm75")  # RTX 4090 and T4


@dataclass
class EnginePlan:
    """One engine to build: its targets, precision, the ONNX to feed, and where it goes."""

    targets: tuple[str, ...]
    precision: str
    onnx_model: onnx.ModelProto
    engine_path: Path
    warnings: list[str] = field(default_factory=list)


def target_groups(gpus: tuple[str, ...], backend: str, precision: str) -> list[tuple[str, ...]]:
    """Targets per engine (checked before any calibration work): ``gpus``, else the default set / the local GPU."""
    targets = parse_targets(gpus) if gpus else DEFAULT_RTX_TARGETS if backend == "tensorrt-rtx" else (require_gpu().cc,)
    return rtx_groups(targets, precision) if backend == "tensorrt-rtx" else [targets]


def engine_paths(out: Path, groups: list[tuple[str, ...]], stem: str) -> list[Path]:
    """``out`` for one engine; ``<stem>.<targets>.engine`` beside it for several."""
    return [out] if len(groups) == 1 else [out.with_name(f"{stem}.{'-'.join(g)}.engine") for g in groups]


def plan_engines(groups: list[tuple[str, ...]], paths: list[Path], backend: str, precision: str, fp32: onnx.ModelProto | None,
                 qdq: onnx.ModelProto | None) -> list[EnginePlan]:
    """One plan per target group: INT8 from the QDQ model, except TensorRT-RTX's Turing group (FP16 from the FP32 model)."""
    plans = []
    for group, path in zip(groups, paths):
        if precision != "int8":
            plans.append(EnginePlan(group, precision, fp32, path))
        elif backend == "tensorrt-rtx" and set(group) <= RTX_NO_INT8:
            if fp32 is None:
                raise QyoloError(
                    f"TensorRT-RTX has no INT8 kernels for {', '.join(group)} (Turing); pass the FP32 model to get an FP16 engine "
                    "for it, or build INT8 with --backend tensorrt on that GPU"
                )
            note = f"TensorRT-RTX has no INT8 kernels for {', '.join(group)} (Turing): built FP16 instead; use --backend tensorrt there for INT8"
            plans.append(EnginePlan(group, "fp16", fp32, path, [note]))
        else:
            plans.append(EnginePlan(group, "int8", qdq, path))
    return plans


def targets_note(gpus: tuple[str, ...], backend: str, groups: list[tuple[str, ...]]) -> str:
    """One line on which engines this build makes and why."""
    if gpus:
        return f"targets: {', '.join(t for g in groups for t in g)} (--gpu)"
    if backend != "tensorrt-rtx":
        return f"targets: the local GPU ({groups[0][0]})"
    return ("targets: the default set, RTX 4090 (sm89) and T4 (sm75); TensorRT-RTX has no INT8 kernels for Turing, so with "
            "INT8 the T4 gets its own FP16 engine (pass --gpu rtx4090 for one engine named as -o says)")
