"""One quantization run as data: the Q/DQ rewrite's options and the passes' options, validated when built.

``QuantizeConfig`` is what `quantize`, `build`, `compare` and `sensitivity` hand to ``qyolo_trt.qdq.pipeline.run``
(and to the rewrite, ``qyolo_trt.qdq.quantize``). A combination that does not compose is refused on construction
with one line naming the options; every other combination runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..defaults import (BIAS_IMAGES, BITS_RANGE, DEFAULT_BITS, DEFAULT_KEEP_FLOAT, DEFAULT_TARGET, DEFAULT_WEIGHT_CLIP, FLOAT_DTYPES,
                        KEEP_FLOAT, LOWBIT_KEEP_FLOAT, BASE_MODE, MODES, RECONSTRUCT_IMAGES, RECONSTRUCT_ITERS, SENSITIVITY_IMAGES,
                        TARGETS, WEIGHT_CLIPS)
from ..errors import QyoloError
from .rules.profiles import PROFILES

ImageSource = str | os.PathLike | Sequence[str | os.PathLike]


def _choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise QyoloError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")


RESOLVED = ("mode", "weight_bits", "act_bits", "keep_float")  # QuantizeConfig fields that None resolves from the others


def check_widths(widths: dict[str, int]) -> None:
    """Refuse a bit width (keyed by its option) outside ``BITS_RANGE``."""
    for option, bits in widths.items():
        if not BITS_RANGE[0] <= bits <= BITS_RANGE[1]:
            raise QyoloError(f"{option} must be in {BITS_RANGE[0]}..{BITS_RANGE[1]}, got {bits}")


@dataclass(frozen=True)
class QuantizeConfig:
    """How to turn an FP32 model and its scales into a QDQ model: the rewrite, then the enabled passes."""

    mode: str | None = None  # None: the target's default at 8 bits, BASE_MODE below
    target: str = DEFAULT_TARGET  # the runtime the placement is made for (qdq.rules.PROFILES)
    bits: int = DEFAULT_BITS  # weights and activations, unless one of the two below is given
    weight_bits: int | None = None  # None: bits
    act_bits: int | None = None  # None: bits; the activation scales must be calibrated for it
    weight_clip: str = DEFAULT_WEIGHT_CLIP
    exclude: tuple[str, ...] = ()  # regexes over node names kept float
    keep_float: tuple[str, ...] | None = None  # None: DEFAULT_KEEP_FLOAT at 8 bits, LOWBIT_KEEP_FLOAT below
    allow_missing: bool = False  # ops whose tensors have no usable scale stay float (reported) instead of failing
    check_hash: bool = True  # the scales must have been computed for this model (an empty hash is not checked)
    float_dtype: str = FLOAT_DTYPES[0]  # "fp16": every non-INT8 part in half precision (GPU targets)
    io_dtype: str = FLOAT_DTYPES[0]  # graph inputs / outputs of an fp16 model
    fallback_k: int | None = None  # keep the K most sensitive units float ...
    fallback_db: float | None = None  # ... or the fewest that reach this head SQNR (dB)
    fallback_images: ImageSource | None = None  # None: the embedded calib_data/
    fallback_num_images: int = SENSITIVITY_IMAGES
    bias_correction: bool = False
    bias_images: ImageSource | None = None  # None: the embedded calib_data/
    bias_num_images: int = BIAS_IMAGES
    reconstruct: bool = False  # learned weight rounding + bias refit, block by block (torch; qyolo_trt.torchq)
    reconstruct_images: ImageSource | None = None  # None: the embedded calib_data/
    reconstruct_num_images: int = RECONSTRUCT_IMAGES
    reconstruct_iters: int = RECONSTRUCT_ITERS  # optimisation steps per block
    seed: int = 0  # reconstruction's random crops, QDrop masks and batches
    shift_padded: bool = False  # shifted mode: also the inputs of padded convs (rules/shift.py); lost agreement once (README)
    # the fields above left None and resolved on construction: ``replace`` resolves them again
    resolved: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolved", frozenset(n for n in RESOLVED if getattr(self, n) is None))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "weight_bits", self.bits if self.weight_bits is None else self.weight_bits)
        object.__setattr__(self, "act_bits", self.bits if self.act_bits is None else self.act_bits)
        keep = (LOWBIT_KEEP_FLOAT if self.lowbit else DEFAULT_KEEP_FLOAT) if self.keep_float is None else self.keep_float
        object.__setattr__(self, "keep_float", tuple(keep))
        if self.mode is None and self.target in TARGETS:
            object.__setattr__(self, "mode", BASE_MODE if self.lowbit else PROFILES[self.target].default_mode)
        self.check()

    @property
    def fallback(self) -> bool:
        return self.fallback_k is not None or self.fallback_db is not None

    @property
    def lowbit(self) -> bool:
        """Weights or activations below 8 bits: the fake-quantized simulation (``passes.lowbit``)."""
        return (self.weight_bits, self.act_bits) != (DEFAULT_BITS, DEFAULT_BITS)

    def replace(self, **changes: object) -> QuantizeConfig:
        """This config with ``changes``; what it resolved on construction (mode, widths, float parts) is resolved again
        for the new fields (``dataclasses.replace`` would keep, e.g., the 8-bit widths and mode after ``bits=4``)."""
        return replace(self, **(dict.fromkeys(self.resolved) | changes))

    def with_images(self, images: ImageSource) -> QuantizeConfig:
        """This config with ``images`` for the passes that need images and were given none."""
        return self.replace(fallback_images=self.fallback_images or images, bias_images=self.bias_images or images,
                       reconstruct_images=self.reconstruct_images or images)

    def check(self) -> None:
        """Refuse choices outside their lists and option combinations that do not compose."""
        _choice("target", self.target, TARGETS)
        _choice("mode", self.mode, MODES)
        if self.mode not in (modes := PROFILES[self.target].modes):
            raise QyoloError(f"--target {self.target} runs --mode {' or '.join(modes)}, not {self.mode} (a TensorRT form)")
        if self.target != DEFAULT_TARGET and self.lowbit:
            raise QyoloError(f"--bits below 8 simulates the {DEFAULT_TARGET} placement; it does not combine with --target {self.target}")
        _choice("weight clip", self.weight_clip, WEIGHT_CLIPS)
        if bad := [k for k in self.keep_float if k not in KEEP_FLOAT]:
            raise QyoloError(f"unknown keep-float part(s) {', '.join(bad)}; choose from {', '.join(KEEP_FLOAT)}")
        if self.float_dtype not in FLOAT_DTYPES or self.io_dtype not in FLOAT_DTYPES:
            raise QyoloError(f"--float-dtype and --io-dtype take {' or '.join(FLOAT_DTYPES)}")
        check_widths({"--bits": self.bits, "--weight-bits": self.weight_bits, "--act-bits": self.act_bits})
        if self.fallback_k is not None and self.fallback_db is not None:
            raise QyoloError("give at most one of --auto-fallback, --fallback-budget")
        if self.fallback_k is not None and self.fallback_k < 0:
            raise QyoloError(f"--auto-fallback must be >= 0, got {self.fallback_k}")
        if self.reconstruct_iters < 0 or self.reconstruct_num_images < 1:
            raise QyoloError(f"--reconstruct-iters must be >= 0 and --reconstruct-num-images >= 1, got {self.reconstruct_iters}, "
                             f"{self.reconstruct_num_images}")
        if self.float_dtype == "fp32" and self.io_dtype == "fp16":
            raise QyoloError("--io-dtype fp16 needs --float-dtype fp16")
        if self.lowbit:
            self._check_lowbit()

    def _check_lowbit(self) -> None:
        """The low-bit simulation is a fake-quantized model for ONNX Runtime: the 8-bit-only passes do not apply."""
        if self.mode == "shifted":
            raise QyoloError("low-bit simulation supports the symmetric and asymmetric modes")
        if self.fallback:
            raise QyoloError("--bits below 8 does not combine with --auto-fallback / --fallback-budget")
        if self.bias_correction:
            raise QyoloError("--bits below 8 does not combine with --bias-correction")
        if self.float_dtype == "fp16":
            raise QyoloError("--float-dtype fp16 does not combine with --bits below 8")
