"""Placement profiles: what each deployment target wants quantized, as data the rewrite reads (no per-target code).

A profile names the op types whose rule applies (a rule's op left out keeps its inputs float on that target), the
Q/DQ forms the target runs and its default form, and the ops whose quantized inputs the calibration pass does not
collect (their ranges are measured when quantizing: ``qdq.measured``). Measurements behind each: README, "CPU speed
per target".
"""

from __future__ import annotations

from dataclasses import dataclass

from ...defaults import DEFAULT_MODE, MODES

WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
SHARED_SCALE = frozenset({"Concat", "MaxPool", "Resize"})
BODY = WEIGHTED | SHARED_SCALE | {"Add"}  # conv inputs, shared-scale chains, residual Adds
CPU_MODES = ("asymmetric", "symmetric")


@dataclass(frozen=True)
class Profile:
    """One target's placement."""

    target: str
    ops: frozenset[str]  # op types whose placement rule applies (keys of the rules/ registry)
    modes: tuple[str, ...]  # Q/DQ forms the target runs
    default_mode: str  # at 8 bits
    backend: str | None = None  # the runner (qyolo_trt.backends) that times a QDQ model for it (None: an engine is built first)
    measured_ops: frozenset[str] = frozenset()  # ops whose quantized inputs have no calibrated range: measured on images
    carried: frozenset[str] = frozenset()  # shared-scale ops whose output the runtime keeps quantized: no Q/DQ after them


PROFILES: dict[str, Profile] = {
    # explicit quantization: Conv + SiLU (+ residual Add) + Q fuse into one INT8 layer, Concats vanish into their INT8
    # producers; "asymmetric" stays allowed (a CPU form) as it was before targets existed
    "tensorrt": Profile("tensorrt", BODY, MODES, DEFAULT_MODE),
    # OpenVINO's CPU plugin runs Conv + bias + SiLU + the next Q as one i8 kernel; NNCF's placement has this structure.
    # Asymmetric UH is the most accurate form; its zero points cost ~5% of the layer time (AVX-512, no AMX). Measured
    # there too: float residual Adds cost a separate bf16 eltwise and 1.2 dB, int8 head convs no speed and agreement.
    # Like NNCF, no Q/DQ after a Concat or MaxPool: the plugin carries its inputs' (shared) quantization through, and
    # a Q/DQ there is a requantize that costs time (the values are the same: the group shares one scale)
    "openvino": Profile("openvino", BODY, CPU_MODES, "asymmetric", backend="openvino", carried=frozenset({"Concat", "MaxPool"})),
    # ONNX Runtime's CPU kernels: DQ -> Conv -> Q is QLinearConv, DQ -> Sigmoid / Mul -> Q QLinearSigmoid / QLinearMul,
    # uint8 activations (its int8-activation kernels run slower than FP32); without the Q after each conv it runs
    # float convs plus the Q/DQ
    "ort": Profile("ort", BODY | {"Sigmoid", "Mul"}, CPU_MODES, "asymmetric", backend="ort", measured_ops=frozenset({"Sigmoid", "Mul"})),
}
