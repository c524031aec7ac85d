"""Activation histograms with every calibrator's clip marked (the Q-YOLO figure), one PNG per tensor.

The streamed calibration histograms are drawn over the observed [min, max] (log counts), with one colour per
method: its symmetric clip(s) as solid vertical lines and, where the method defines one, its asymmetric
[lower, upper] as dashed lines. Tensors whose minimum is SiLU's (-0.2785) get the SiLU band shaded.
matplotlib is imported lazily with the Agg backend (headless; the ``plots`` extra).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..calib import METHODS, Histogram, MethodOptions, TensorRange, compute_range
from ..calib.collect import calibration_targets, collect
from ..data import list_images
from ..errors import QyoloError
from ..fileio import write_all
from ..lazy import lazy_import
from ..model import inspect_detector

SILU_MIN = -0.2785  # min of x * sigmoid(x)
DISPLAY_BINS = 512
FIGSIZE = (8.0, 4.5)
DPI = 100
COLORS = {"uh": "tab:red", "minmax": "tab:gray", "percentile": "tab:blue", "entropy": "tab:green", "mse": "tab:purple"}


def resolve_tensors(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """Calibrated tensor names; a node name stands for its data input (``/model.21/conv/Conv`` -> its input)."""
    targets = calibration_targets(model)
    known = set(targets)
    inputs = {n.name: n.input[0] for n in model.graph.node if n.name and n.input}
    out = []
    for name in names:
        tensor = name if name in known else inputs.get(name)
        if tensor not in known:
            raise QyoloError(f"{name!r} is not a calibrated tensor nor a node reading one (e.g. {', '.join(targets[1:4])})")
        out.append(tensor)
    return list(dict.fromkeys(out))


def ranges(hist: Histogram, methods: Sequence[str], name: str = "tensor", bits: int = 8) -> dict[str, TensorRange]:
    """Every method's range for one histogram."""
    options = MethodOptions(bits=bits)
    return {m: compute_range(m, hist, options, name) for m in methods}


def outlier_ratio(hist: Histogram, uh: TensorRange) -> float:
    """How far the tensor's tail reaches past UH's clip (largest magnitude / UH clip): the --top ranking."""
    return hist.absmax / uh.clip if uh.clip > 0 else 0.0


def display_counts(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) over the occupied bins, merged to at most ``DISPLAY_BINS`` bars."""
    occupied = np.flatnonzero(hist.counts)
    lo, hi = (occupied[0], occupied[-1] + 1) if occupied.size else (hist.bins - 1, hist.bins + 1)
    factor = max(1, -(-(hi - lo) // DISPLAY_BINS))
    hi = lo + -(-(hi - lo) // factor) * factor
    counts = np.zeros(hi - lo, np.int64)
    span = hist.counts[lo : min(hi, hist.counts.size)]
    counts[: span.size] = span
    edges = (np.arange(lo, hi + 1, factor) - hist.bins) * hist.width
    return counts.reshape(-1, factor).sum(axis=1), edges


def render(name: str, hist: Histogram, found: dict[str, TensorRange]):
    """A matplotlib Figure (Agg) of ``hist`` with every range in ``found`` marked."""
    lazy_import("matplotlib", "plots", "matplotlib").use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_subplot()
    counts, edges = display_counts(hist)
    ax.stairs(np.maximum(counts, 0.5), edges, fill=True, color="0.75", baseline=0.5, label=f"{hist.total:,} values")
    ax.set_yscale("log")
    if SILU_MIN - 1e-3 <= hist.min < 0.9 * SILU_MIN:
        ax.axvspan(SILU_MIN, 0.0, color="gold", alpha=0.3, label=f"SiLU band [{SILU_MIN}, 0]")
        _silu_zoom(ax, hist)
    for method, r in found.items():
        color = COLORS.get(method, "black")
        # UH (the headline method) on top and wider: where another method picks the same clip, UH stays visible
        style = {"color": color, "lw": 2.5 if method == "uh" else 1.5, "zorder": 4 if method == "uh" else 3}
        ax.axvline(r.clip, label=f"{method} clip ±{r.clip:.4g}", **style)
        if -r.clip >= edges[0]:
            ax.axvline(-r.clip, **style)
        if r.lower is not None and r.upper is not None and method == "uh":
            ax.axvline(r.lower, color=color, lw=1.2, ls="--", label=f"{method} asymmetric [{r.lower:.4g}, {r.upper:.4g}]")
            ax.axvline(r.upper, color=color, lw=1.2, ls="--")
    ax.set_xlim(edges[0], max(edges[-1], *(r.clip for r in found.values())) * 1.02)
    ax.set_xlabel("activation value")
    ax.set_ylabel("count (log)")
    ax.set_title(f"{name}  [min {hist.min:.4g}, max {hist.max:.4g}]", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _silu_zoom(ax, hist: Histogram) -> None:
    """An inset of the raw (unmerged) bins around the SiLU band."""
    edges = (np.arange(-hist.bins, hist.bins + 1)) * hist.width
    keep = np.flatnonzero((edges[:-1] >= 1.5 * SILU_MIN) & (edges[1:] <= -1.5 * SILU_MIN))
    if keep.size < 2:
        return
    inset = ax.inset_axes([0.3, 0.45, 0.3, 0.45])
    inset.stairs(np.maximum(hist.counts[keep], 0.5), edges[keep[0] : keep[-1] + 2], fill=True, color="0.6", baseline=0.5)
    inset.axvspan(SILU_MIN, 0.0, color="gold", alpha=0.3)
    inset.set_yscale("log")
    inset.set_title("zoom: the SiLU band", fontsize=7)
    inset.tick_params(labelsize=6)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def file_name(tensor: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tensor).strip("_") + ".png"


def plot_histograms(
    model: onnx.ModelProto,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    tensors: Sequence[str] = (),
    top: int | None = None,
    num_images: int | None = 32,
    methods: Sequence[str] = tuple(METHODS),
    bins: int = 2048,
    bits: int = 8,
) -> list[dict[str, Any]]:
    """One calibration pass, then one PNG per requested tensor (or the ``top`` tensors by ``outlier_ratio``)
    in ``out_dir``; returns, per PNG, the tensor, the file and every method's range."""
    if bool(tensors) == (top is not None):
        raise QyoloError("give tensor names or --top K (one of them)")
    if unknown := [m for m in methods if m not in METHODS]:
        raise QyoloError(f"unknown calibration method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    lazy_import("matplotlib", "plots", "matplotlib")
    names = resolve_tensors(model, tensors) if tensors else []
    info = inspect_detector(model)
    paths = [Path(p) for p in images] if isinstance(images, (list, tuple)) else list_images(images)
    stats = collect(model, info, paths, limit=num_images, bins=bins, desc="histograms").stats
    if top is not None:
        uh = {n: compute_range("uh", stats[n], MethodOptions(bits=bits), n) for n in stats}
        names = sorted(stats, key=lambda n: -outlier_ratio(stats[n], uh[n]))[:top]
    found = {n: ranges(stats[n], methods, n, bits) for n in names}
    out, files = [], []
    for n in names:
        path = Path(out_dir) / file_name(n)
        files.append((path, png_bytes(render(n, stats[n], found[n]))))
        out.append({"tensor": n, "png": str(path), "min": stats[n].min, "max": stats[n].max,
                    "ranges": {m: {k: v for k, v in asdict(r).items() if v is not None} for m, r in found[n].items()}})  # fmt: skip
    write_all(files)  # every PNG or none
    return out
