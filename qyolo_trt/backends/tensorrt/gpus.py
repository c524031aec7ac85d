"""GPU names -> CUDA compute capabilities ("sm89"), and which targets can share one TensorRT-RTX engine."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ...errors import QyoloError

# lower-case GPU name (spaces, dashes and "nvidia"/"geforce" dropped) -> compute capability
GPU_CC: dict[str, str] = {
    **dict.fromkeys(("t4", "rtx2060", "rtx2070", "rtx2080", "rtx2080ti", "titanrtx", "quadrortx6000"), "sm75"),
    **dict.fromkeys(("a100", "a30", "a800"), "sm80"),
    **dict.fromkeys(("a10", "a10g", "a40", "a16", "a2", "rtx3060", "rtx3070", "rtx3080", "rtx3090", "rtxa6000", "a6000"), "sm86"),
    **dict.fromkeys(("orin", "jetsonorin", "agxorin"), "sm87"),
    **dict.fromkeys(("rtx4060", "rtx4070", "rtx4080", "rtx4090", "l4", "l40", "l40s", "rtx6000ada"), "sm89"),
    **dict.fromkeys(("h100", "h200", "gh200"), "sm90"),
    **dict.fromkeys(("b200", "gb200"), "sm100"),
    **dict.fromkeys(("rtx5070", "rtx5080", "rtx5090", "rtxpro6000"), "sm120"),
}
# TensorRT-RTX: compute capabilities it can target ahead of time, and those with INT8 convolutions
RTX_TARGETS = ("sm75", "sm80", "sm86", "sm89", "sm120", "sm121")
RTX_NO_INT8 = frozenset({"sm75"})  # Turing: FP32/FP16 only (TensorRT-RTX support matrix; verified: Q/DQ run as float)
_SM = re.compile(r"^sm_?(\d{2,3})$")


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]|nvidia|geforce|tesla", "", name.lower())


def to_cc(name: str) -> str:
    """``"rtx4090"`` / ``"NVIDIA GeForce RTX 4090"`` / ``"sm89"`` / ``"8.9"`` -> ``"sm89"``."""
    key = _key(name)
    if m := _SM.match(key):
        return f"sm{m.group(1)}"
    if m := re.fullmatch(r"(\d{1,2})\.(\d)", key):
        return f"sm{m.group(1)}{m.group(2)}"
    if key in GPU_CC:
        return GPU_CC[key]
    known = ", ".join(sorted(GPU_CC))
    raise QyoloError(f"unknown GPU {name!r}: give a compute capability (sm75, sm86, sm89, ...) or one of: {known}")


def cc_from_version(major: int, minor: int) -> str:
    """(8, 9) -> ``"sm89"``."""
    return f"sm{major}{minor}"


def parse_targets(values: Iterable[str]) -> tuple[str, ...]:
    """Repeatable / comma-separated ``--gpu`` values -> unique compute capabilities, in the given order."""
    ccs = [to_cc(v) for value in values for v in value.split(",") if v.strip()]
    if not ccs:
        raise QyoloError("--gpu names no GPU; give e.g. --gpu rtx4090 or --gpu sm89,sm86 (or leave it out for the default set)")
    return tuple(dict.fromkeys(ccs))


def rtx_groups(targets: Iterable[str], precision: str) -> list[tuple[str, ...]]:
    """Targets that one TensorRT-RTX engine can serve without losing precision.

    TensorRT-RTX makes one portable engine for several compute capabilities, but an engine that
    includes Turing (sm75) is built for its lowest common denominator: with sm75 in the set, INT8
    convolutions fall back to float fake-quantisation for every target. So for INT8, sm75 gets its
    own engine; FP32/FP16 engines stay portable across all targets.
    """
    targets = tuple(dict.fromkeys(targets))
    bad = [t for t in targets if t not in RTX_TARGETS]
    if bad:
        raise QyoloError(
            f"TensorRT-RTX cannot target {', '.join(bad)} (it targets {', '.join(RTX_TARGETS)}); "
            "build with --backend tensorrt on that GPU"
        )
    if precision != "int8":
        return [targets]
    split = [tuple(t for t in targets if t not in RTX_NO_INT8), tuple(t for t in targets if t in RTX_NO_INT8)]
    return [g for g in split if g]
