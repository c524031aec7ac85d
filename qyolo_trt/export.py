"""Ultralytics YOLOv5u/v8/11 detector (.pt or model .yaml) -> ONNX, offline; an existing .onnx is validated.

Static exports go through Ultralytics' own exporter (the graph Ultralytics users get). Ultralytics' ``dynamic=True``
also makes H, W and the channel dim symbolic, which TensorRT INT8 and :func:`inspect_detector` cannot use, so
``dynamic_batch`` traces the model in Ultralytics' export mode with only the batch axis symbolic.
"""

from __future__ import annotations

import io
import os
import pickletools
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx

from .errors import DependencyError, QyoloError
from .fileio import atomic_path, sha256_file
from .lazy import lazy_import
from .model import DetectorInfo, inspect_detector, load_detector, load_onnx

YAML_SUFFIXES = (".yaml", ".yml")
EXPORTABLE = (".pt", *YAML_SUFFIXES)  # Ultralytics checkpoints / model YAMLs, exported to ONNX
DEFAULT_IMGSZ = 640
DEFAULT_OPSET = 17
OPSET_RANGE = (13, 20)  # per-channel Q/DQ needs 13; torch's TorchScript exporter stops at 20
ULTRALYTICS_PINS = "ultralytics==8.4.190 torchvision==0.28.0"  # as in tools/install_export.sh
CLASSIC_YOLOV5_MODULES = ("models.yolo", "models.common", "models.experimental")


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` produced (or validated)."""

    source: Path
    output: Path | None  # None: an .onnx validated without -o
    exporter: str  # "ultralytics", "torch.onnx (dynamic batch)" or "validated"
    info: DetectorInfo
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "output": None if self.output is None else str(self.output),
            "exporter": self.exporter,
            "sha256": self.sha256,
            **self.info.to_dict(),
        }


def load_source(src: str | os.PathLike, *, dynamic_batch: bool = False) -> onnx.ModelProto:
    """The ONNX model of ``src``: an .onnx loaded as it is, a .pt / .yaml exported first (in a temporary folder)."""
    src = Path(src)
    if src.suffix.lower() not in EXPORTABLE:
        return load_onnx(src)
    with tempfile.TemporaryDirectory(prefix="qyolo-export-") as tmp:
        return load_onnx(export(src, Path(tmp) / f"{src.stem}.onnx", dynamic_batch=dynamic_batch).output)


def export(
    src: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    imgsz: int | tuple[int, int] | None = None,
    opset: int | None = None,
    dynamic_batch: bool = False,
    seed: int = 0,
) -> ExportResult:
    """Export ``src`` (.pt / .yaml) to ``out`` (default ``<stem>.onnx``), or validate an .onnx (copied to ``out`` if given).

    A model .yaml gets random weights drawn with ``seed``. The output is written atomically and validated.
    """
    src = Path(src)
    suffix = src.suffix.lower()
    if suffix == ".onnx":
        return _validate_onnx(src, None if out is None else Path(out), imgsz, opset, dynamic_batch)
    if suffix not in EXPORTABLE:
        raise QyoloError(f"{src}: unknown model format '{src.suffix}' (expected .pt, .yaml or .onnx)")
    if suffix == ".pt":
        _check_checkpoint(src)
    hw = _imgsz(DEFAULT_IMGSZ if imgsz is None else imgsz)
    opset = DEFAULT_OPSET if opset is None else opset
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise QyoloError(f"--opset {opset} not supported: use {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
    out = Path(out) if out is not None else Path(src.stem).with_suffix(".onnx")
    if out.resolve() == src.resolve():
        raise QyoloError(f"{out}: output would overwrite the source model")
    yolo = _load_ultralytics(src, seed)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory(prefix="qyolo-export-") as work:
        if dynamic_batch:
            _trace_dynamic_batch(yolo.model, tmp, hw, opset)
        else:
            shutil.move(_ultralytics_export(yolo, Path(work), hw, opset), tmp)
        info = inspect_detector(load_onnx(tmp), source=f"{src} (exported)")
        if info.imgsz != hw or info.dynamic_batch != dynamic_batch:
            raise QyoloError(f"{src}: exported ONNX has imgsz {info.imgsz}, dynamic batch {info.dynamic_batch}; expected {hw}")
        digest = sha256_file(tmp)
    exporter = "torch.onnx (dynamic batch)" if dynamic_batch else "ultralytics"
    return ExportResult(source=src, output=out, exporter=exporter, info=info, sha256=digest)


def _imgsz(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    hw = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    if len(hw) != 2 or any(d <= 0 or d % 32 for d in hw):
        raise QyoloError(f"--imgsz {imgsz}: must be a positive multiple of 32 (the largest YOLO stride)")
    return int(hw[0]), int(hw[1])


def _validate_onnx(
    src: Path, out: Path | None, imgsz: int | tuple[int, int] | None, opset: int | None, dynamic_batch: bool
) -> ExportResult:
    """An .onnx input is validated, not re-exported: options it cannot honour are an error, not silently ignored."""
    _, info = load_detector(src)
    conflicts = []
    if imgsz is not None and _imgsz(imgsz) != info.imgsz:
        conflicts.append(f"--imgsz {imgsz} (the model takes {info.imgsz[0]}x{info.imgsz[1]})")
    if opset is not None and opset != info.opset:
        conflicts.append(f"--opset {opset} (the model has opset {info.opset})")
    if dynamic_batch and not info.dynamic_batch:
        conflicts.append("--dynamic-batch (the model has a fixed batch)")
    if conflicts:
        raise QyoloError(f"{src}: an .onnx input is validated, not re-exported; cannot apply {', '.join(conflicts)}")
    if out is not None and out.resolve() != src.resolve():
        with atomic_path(out) as tmp:
            shutil.copyfile(src, tmp)
    return ExportResult(source=src, output=out, exporter="validated", info=info, sha256=sha256_file(src))


def _pickle_strings(path: Path) -> set[str]:
    """Every string in a torch checkpoint's pickle (module and class names included), read without unpickling."""
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = next(n for n in zf.namelist() if n.endswith("data.pkl"))
            return {arg for _, arg, _ in pickletools.genops(io.BytesIO(zf.read(pkl))) if isinstance(arg, str)}
    except (zipfile.BadZipFile, StopIteration, OSError, ValueError, EOFError):
        raise QyoloError(f"{path}: not a readable PyTorch checkpoint") from None


def _check_checkpoint(src: Path) -> None:
    """A readable checkpoint, and not a classic ultralytics/yolov5 one (its pickle refers to yolov5's ``models``)."""
    if not src.is_file():
        raise QyoloError(f"{src}: no such file")
    if any(s.startswith(CLASSIC_YOLOV5_MODULES) for s in _pickle_strings(src)):
        raise QyoloError(
            f"{src}: a classic ultralytics/yolov5 checkpoint, which Ultralytics cannot load; export it with yolov5's own "
            f"export.py (python export.py --weights {src.name} --include onnx --opset 17) and pass the .onnx instead"
        )


def _ultralytics() -> ModuleType:
    """Import Ultralytics offline and quiet (its log goes to stdout, which is reserved for results)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        return lazy_import("ultralytics", extra="export", what="Ultralytics (with torch)")
    except DependencyError as exc:  # the extra alone is not enough: Ultralytics goes in without its deps
        raise DependencyError(f"{exc}, then: pip install --no-deps {ULTRALYTICS_PINS} (or run tools/install_export.sh)") from None


def _load_ultralytics(src: Path, seed: int) -> Any:
    """An Ultralytics ``YOLO`` detection model from a .pt, or from a .yaml with weights drawn from ``seed``."""
    ultralytics = _ultralytics()
    torch = lazy_import("torch", extra="export")
    # A .pt is passed under a neutral name: Ultralytics renames 'yolov5n.pt' to 'yolov5nu.pt' and would download it.
    try:
        with torch.random.fork_rng(), tempfile.TemporaryDirectory(prefix="qyolo-load-") as tmp:
            torch.manual_seed(seed)
            if src.suffix.lower() == ".pt":
                os.symlink(src.resolve(), Path(tmp) / "model.pt")
                yolo = ultralytics.YOLO(str(Path(tmp) / "model.pt"))
            else:
                yolo = ultralytics.YOLO(str(src))
    except (FileNotFoundError, TypeError, ModuleNotFoundError, KeyError, AttributeError, ValueError) as exc:
        raise QyoloError(f"{src}: Ultralytics cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if yolo.task != "detect" or type(yolo.model).__name__ != "DetectionModel":
        raise QyoloError(f"{src}: not a detection model (Ultralytics task '{yolo.task}', {type(yolo.model).__name__})")
    return yolo


def _ultralytics_export(yolo: Any, work: Path, hw: tuple[int, int], opset: int) -> Path:
    """Ultralytics' own ONNX exporter, writing into ``work`` (it writes beside ``pt_path``), never beside the source."""
    yolo.model.pt_path = str(work / "model.pt")
    return Path(yolo.export(format="onnx", imgsz=list(hw), opset=opset, simplify=False, dynamic=False, device="cpu"))


def _trace_dynamic_batch(model: Any, path: Path, hw: tuple[int, int], opset: int) -> None:
    """Ultralytics' export-mode preparation of a detector, then torch.onnx with only the batch axis symbolic."""
    torch = lazy_import("torch", extra="export")
    nn = lazy_import("ultralytics.nn.modules", extra="export")
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model = model.fuse()
    for m in model.modules():
        if isinstance(m, nn.Detect):
            m.export, m.format, m.dynamic, m.xyxy, m.shape = True, "onnx", False, False, None
        elif isinstance(m, nn.C2f):
            m.forward = m.forward_split
    im = torch.zeros(1, 3, *hw)
    out_shape = model(im).shape  # dry run: the head also caches its anchors for this input size
    axes = {"images": {0: "batch"}, "output0": {0: "batch"}}
    with warnings.catch_warnings():  # the head's cached-shape check is traced as a constant: intended here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model, im, str(path), opset_version=opset, input_names=["images"], output_names=["output0"],
            dynamic_axes=axes, dynamo=False,
        )
    # the tracer leaves the non-batch output dims symbolic; they are fixed by H, W
    onnx_model = load_onnx(path)
    for dim, size in zip(onnx_model.graph.output[0].type.tensor_type.shape.dim[1:], out_shape[1:]):
        dim.dim_value = int(size)
    onnx.save(onnx_model, str(path))
