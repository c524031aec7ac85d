"""The scales file (JSON) and TensorRT's calibration-cache text format.

One ``TensorRange`` per activation tensor carries every INT8 form a target may use:
- symmetric (TensorRT): ``scale`` with zero point 0, grid [-127*scale, 127*scale], ``clip = 127*scale``;
- asymmetric (zero-point targets: ONNX Runtime, OpenVINO): ``lower``/``upper`` -> uint8 scale + zero point;
- shifted-symmetric (TensorRT): subtract ``shift`` before a symmetric Q/DQ with ``shift_scale``
  (grid covers [lower, upper]); the QDQ rewrite folds the shift into consumers where that is exact.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..defaults import INT8_MAX
from ..errors import QyoloError
from ..fileio import read_json, write_json_atomic, write_text_atomic

FORMAT_VERSION = 1
QMAX = INT8_MAX


@dataclass
class TensorRange:
    """INT8 parameters of one activation tensor."""

    scale: float  # symmetric scale (zero point 0)
    clip: float  # symmetric clip threshold = QMAX * scale
    min: float  # true observed minimum
    max: float  # true observed maximum
    lower: float | None = None  # asymmetric lower bound (e.g. UH's l), when the method defines one
    upper: float | None = None  # asymmetric upper bound
    shift: float | None = None  # shifted-symmetric offset c = (lower + upper) / 2
    shift_scale: float | None = None  # shifted-symmetric scale (upper - lower) / 254
    warning: str | None = None  # set for degenerate tensors (constant, all zero, non-finite values)

    def asymmetric(self) -> tuple[float, int]:
        """uint8 (scale, zero_point) covering [lower, upper] (falls back to the symmetric range)."""
        lo = min(self.lower if self.lower is not None else -self.clip, 0.0)
        hi = max(self.upper if self.upper is not None else self.clip, 0.0)
        scale = max((hi - lo) / 255.0, 1e-12)
        return scale, int(min(255, max(0, round(-lo / scale))))


@dataclass
class ScalesFile:
    """Calibration result for one model and one method."""

    model_hash: str
    method: str
    num_images: int
    tensors: dict[str, TensorRange]
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "qyolo-trt-scales",
            "version": FORMAT_VERSION,
            "model_hash": self.model_hash,
            "method": self.method,
            "params": self.params,
            "num_images": self.num_images,
            "tensors": {k: _finite_dict(asdict(v)) for k, v in sorted(self.tensors.items())},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write deterministic JSON atomically (same input -> byte-identical file)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "scales") -> "ScalesFile":
        """Parse and validate: every tensor entry is an object whose scale and clip are finite positive numbers."""
        if not isinstance(data, dict) or data.get("format") != "qyolo-trt-scales":
            raise QyoloError(f"{source}: not a qyolo-trt scales file")
        tensors = data.get("tensors")
        if not isinstance(tensors, dict):
            raise QyoloError(f"{source}: malformed scales file ('tensors' must be an object of tensor name -> range)")
        try:
            ranges = {k: _tensor_range(k, v) for k, v in tensors.items()}
            return cls(str(data["model_hash"]), str(data["method"]), int(data["num_images"]), ranges, dict(data.get("params", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise QyoloError(f"{source}: malformed scales file ({type(exc).__name__}: {exc})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ScalesFile":
        return cls.from_dict(read_json(path, "scales file"), source=str(path))

    @classmethod
    def from_symmetric(cls, scales: dict[str, float], model_hash: str = "", method: str = "calib-cache") -> "ScalesFile":
        """Wrap bare symmetric scales (e.g. from a TensorRT calibration cache)."""
        tensors = {k: TensorRange(scale=s, clip=s * QMAX, min=-s * QMAX, max=s * QMAX) for k, s in scales.items()}
        return cls(model_hash, method, 0, tensors)

    @classmethod
    def from_trt_cache(cls, path: str | os.PathLike, model_hash: str = "") -> "ScalesFile":
        """A TensorRT calibration cache (trtexec, Polygraphy, ModelOpt) as a scales file; its header is kept in params."""
        header, scales = read_trt_cache(path)
        converted = cls.from_symmetric(scales, model_hash)
        converted.params = {"source": Path(path).name, "header": header}
        return converted


_KNOWN = {f.name for f in fields(TensorRange)}
_POSITIVE = ("scale", "clip")  # must be finite and > 0
_OPTIONAL = ("lower", "upper", "shift", "shift_scale", "min", "max")  # a number or null (null: degenerate statistics)


def _tensor_range(name: str, entry: Any) -> TensorRange:
    """One validated ``TensorRange``; a ValueError naming the tensor and field otherwise."""
    if not isinstance(entry, dict):
        raise ValueError(f"tensor {name!r}: expected an object, got {type(entry).__name__}")
    for key in _POSITIVE:
        v = entry.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"tensor {name!r}: {key} must be a finite positive number, got {v!r}")
    for key in _OPTIONAL:
        v = entry.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"tensor {name!r}: {key} must be a number or null, got {v!r}")
    return TensorRange(**{k: v for k, v in entry.items() if k in _KNOWN})


def _finite_dict(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf/nan: degenerate statistics are stored as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


# ---- TensorRT calibration cache --------------------------------------------------------------

def _float_to_hex(x: float) -> str:
    return struct.pack(">f", x).hex()


def _hex_to_float(h: str) -> float:
    return struct.unpack(">f", bytes.fromhex(h.strip().rjust(8, "0")))[0]


def trt_cache_text(scales: dict[str, float], header: str = "TRT-100000-EntropyCalibration2") -> str:
    """``name: <big-endian hex of float32 scale>`` lines under a ``TRT-<version>-<algo>`` header."""
    return "\n".join([header, *(f"{name}: {_float_to_hex(s)}" for name, s in sorted(scales.items()))]) + "\n"


def write_trt_cache(path: str | os.PathLike, scales: dict[str, float], header: str = "TRT-100000-EntropyCalibration2") -> None:
    """Write a TensorRT calibration cache (``trt_cache_text``) atomically."""
    write_text_atomic(path, trt_cache_text(scales, header))


def read_trt_cache(path: str | os.PathLike) -> tuple[str, dict[str, float]]:
    """Read a TensorRT calibration cache (trtexec, Polygraphy, ModelOpt): (header, name -> scale)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except FileNotFoundError:
        raise QyoloError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError):
        raise QyoloError(f"{p}: not a TensorRT calibration cache (not text)") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise QyoloError(f"{p}: not a TensorRT calibration cache (missing 'TRT-<version>-<algorithm>' header)")
    scales: dict[str, float] = {}
    for ln in lines[1:]:
        name, sep, value = ln.rpartition(":")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{1,8}", value.strip()):
            raise QyoloError(f"{p}: malformed calibration-cache line {ln[:80]!r} (expected 'name: <8 hex digits of a float32>')")
        scale = _hex_to_float(value)
        if not math.isfinite(scale) or scale <= 0:
            raise QyoloError(f"{p}: tensor {name.strip()!r} has scale {scale} (must be finite and positive)")
        scales[name.strip()] = scale
    return lines[0], scales
