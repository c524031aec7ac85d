"""Quantization-aware fine-tuning of a QDQ model, label-free, exported as the same QDQ model with new values.

The QDQ model (placement, shared Concat scales, shifts, bit width; UH-calibrated, and reconstructed by ``qat --reconstruct``)
is loaded as a ``TorchGraph``: every quantized weight becomes an ``STEWeight`` (learned in grid units from the model's
own integers, with the FP32 weight's residual where the model rounded to nearest, so a reconstructed start keeps its
rounding; rounded straight-through on the model's per-channel scale), every activation quantizer but the image input's
a step size learned at ``scale_lr`` (LSQ, Esser et al. 2020; one parameter per group of tensors that share a scale),
and each quantized conv's float bias an offset learned at ``bias_lr``. Both rates default to 0: on the tuning split they
lost to learning the weights alone (README, QAT). The objective is distillation from the FP32 model (``distill``) on
random stride-aligned crops. Optional: an EMA of the parameters (``ema``) and the QC phase (weights frozen as integers,
step sizes and biases refit for ``qc_epochs``), both from Gupta & Asthana 2023. Each epoch records the weights whose
integer flipped. With ``keep_best`` (the default) the export holds the parameters (the start's, or an epoch's, averaged
where the EMA is on) with the lowest distillation loss on the whole training images, quantized as exported: at 8 bits
the first epoch's straight-through steps flip the weights AdaRound left next to a rounding tie and raised that loss on
both real models (README, QAT), so a run that does not improve on its start returns it.

Checkpoints (every epoch, written atomically) hold the parameters, the optimiser, the EMA and the history; a resumed
run continues after the last finished epoch and ends exactly like an uninterrupted one (per-epoch RNG streams).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..defaults import (QAT_BATCH, QAT_BIAS_LR, QAT_CROP, QAT_EMA_DECAY, QAT_EPOCHS, QAT_KEEP_BEST, QAT_LR, QAT_QC,
                        QAT_QC_EPOCHS, QAT_SCALE_LR)  # fmt: skip
from ..errors import QyoloError
from ..eval.agreement import SqnrMeter
from ..fileio import write_bytes_atomic
from ..lazy import lazy_import
from ..normalize import normalize
from ..progress import progress_bar
from .blocks import is_local
from .distill import distill_loss, distill_targets, random_window, resizes_by_scale
from .ema import FlipCounter, ParamEMA
from .graph import TorchGraph
from .quantizers import FixedWeight
from .scales import learnable_scales
from .writeback import write_act_scales, write_back

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")
nn = torch.nn

MIN_SCALE = 1e-8
HALF_STEP = 0.499  # a latent's start stays this close to its integer: it rounds to the start's integer


class STEWeight(nn.Module):
    """A per-channel symmetric weight for QAT: ``latent`` (the weight in grid units) is learned, ``round`` is
    straight-through (zero gradient where the clamp to ``[-qmax, qmax]`` saturates); ``integers()`` is what ``forward`` uses."""

    def __init__(self, latent: np.ndarray, scale: np.ndarray, axis: int, qmax: int) -> None:
        super().__init__()
        self.axis, self.qmax = axis, int(qmax)
        shape = [-1 if i == axis else 1 for i in range(latent.ndim)]
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)).reshape(shape))
        self.latent = nn.Parameter(torch.from_numpy(latent.astype(np.float32)))

    def grid(self, latent: torch.Tensor | None = None) -> torch.Tensor:
        """The integers of ``latent`` (default: this weight's), as floats."""
        return torch.round((self.latent if latent is None else latent).detach().clamp(-self.qmax, self.qmax))

    def forward(self) -> torch.Tensor:
        q = self.latent.clamp(-self.qmax, self.qmax)
        return (q + (torch.round(q) - q).detach()) * self.scale

    def integers(self) -> np.ndarray:
        return self.grid().numpy().astype(np.int64)


@dataclass(frozen=True)
class Settings:
    epochs: int
    batch: int
    crop: float
    lr: float
    scale_lr: float
    bias_lr: float
    ema: bool
    ema_decay: float
    qc: bool
    qc_epochs: int
    keep_best: bool
    seed: int


@dataclass
class _Best:
    """The parameters with the lowest whole-image loss so far (epoch -1: the start, whose loss is ``start``)."""

    loss: float
    epoch: int
    values: list[torch.Tensor]
    start: float


@dataclass
class _Run:
    """What one training phase works on."""

    student: TorchGraph
    teacher: TorchGraph
    images: torch.Tensor
    input_name: str
    targets: list[str]
    crop: float  # 1 when the targets cannot be computed from a crop


def qat(
    qdq: onnx.ModelProto,
    fp32: onnx.ModelProto,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    epochs: int = QAT_EPOCHS,
    batch: int = QAT_BATCH,
    crop: float = QAT_CROP,
    lr: float = QAT_LR,
    scale_lr: float = QAT_SCALE_LR,
    bias_lr: float = QAT_BIAS_LR,
    ema: bool = True,
    ema_decay: float = QAT_EMA_DECAY,
    qc: bool = QAT_QC,
    qc_epochs: int = QAT_QC_EPOCHS,
    keep_best: bool = QAT_KEEP_BEST,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    threads: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[onnx.ModelProto, dict]:
    """The fine-tuned QDQ model (same graph; new weight integers, biases and activation scales) and stats (per-epoch
    loss, whole-image loss on all images and flipped weights; the epoch exported, -1 for the start; full-image loss
    before / after on the first ``batch`` images; seconds).

    ``checkpoint``: written after every epoch; ``resume`` continues from it. ``on_epoch(row)`` runs after each
    epoch's checkpoint (an exception there stops the run with that checkpoint in place)."""
    s = Settings(epochs, batch, crop, lr, scale_lr, bias_lr, ema, ema_decay, qc, qc_epochs, keep_best, seed)
    if epochs < 0 or qc_epochs < 0 or batch < 1 or not 0 < crop <= 1 or not 0 <= ema_decay < 1 or not feeds:
        raise QyoloError(f"qat: need epochs >= 0, qc_epochs >= 0, batch >= 1, 0 < crop <= 1, 0 <= ema_decay < 1 and "
                         f"images (got {epochs}, {qc_epochs}, {batch}, {crop}, {ema_decay}, {len(feeds)} feeds)")  # fmt: skip
    if resume and checkpoint is None:
        raise QyoloError("qat: resume needs a checkpoint path")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    start = time.perf_counter()
    fp32 = normalize(fp32)
    run = _prepare(qdq, fp32, feeds, crop)
    weights = _ste_weights(run.student, fp32)
    scales, deltas = list({id(p): p for p in learnable_scales(run.student).values()}.values()), _bias_deltas(run.student)
    optimizer = torch.optim.Adam([{"params": [w.latent for w in weights.values()], "lr": lr},
                                  {"params": deltas, "lr": bias_lr},
                                  *({"params": [p], "lr": scale_lr * float(p.detach())} for p in scales)])  # fmt: skip
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    params = [w.latent for w in weights.values()] + deltas + scales
    averaged = ParamEMA(params, ema_decay) if ema else None
    probe = run.images[:batch]
    loss_before = _whole_loss(run, probe, batch)
    fingerprint = hashlib.sha256(qdq.SerializeToString())
    fingerprint.update(run.images.numpy().data)
    history, saved = _load(checkpoint, s, fingerprint.hexdigest(), run.student, optimizer, averaged) if resume else ([], None)
    best = None
    if keep_best:
        if saved is None:
            loss = _whole_loss(run, run.images, batch)
            saved = {"loss": loss, "epoch": -1, "values": [p.detach().clone() for p in params], "start": loss}
        best = _Best(**saved)
    bar = progress_bar(range(len(history), epochs), desc="qat", unit="epoch")
    for epoch in bar:
        schedule = _cosine(epoch, epochs, math.ceil(len(run.images) / batch))
        history.append({"epoch": epoch, **_epoch(run, s, optimizer, averaged, weights, epoch, schedule)})
        if best is not None:
            history[-1]["whole_loss"] = _consider(run, s, params, averaged, best, epoch)
        bar.set_postfix(loss=f"{history[-1]['loss']:.4g}")
        if checkpoint is not None:
            _save(checkpoint, s, fingerprint.hexdigest(), run.student, optimizer, averaged, history, best)
        if on_epoch is not None:
            on_epoch(history[-1])
    if best is not None:
        _assign(params, best.values)
    elif averaged is not None:
        averaged.apply()
    loss_trained = _whole_loss(run, probe, batch)
    for name, w in weights.items():  # frozen: the integers the model will hold
        run.student.set_weight(name, FixedWeight(w.integers(), w.scale.numpy().ravel(), w.axis))
    qc_rows = _correct(run, s, scales, deltas) if qc else []
    model = write_act_scales(write_back(qdq, run.student, list(weights)), run.student)
    last = history[-1] if history else {}
    return model, {
        "images": len(run.images), "epochs": history, "qc": qc_rows, "settings": asdict(s), "crop": run.crop,
        "targets": run.targets, "weights": len(weights), "scales": len(scales), "threads": torch.get_num_threads(),
        "loss_before": loss_before, "loss_trained": loss_trained, "loss_after": _whole_loss(run, probe, batch),
        "flipped_weights": last.get("flipped_ema" if ema else "flipped_weights"),
        "kept_epoch": best.epoch if best is not None else len(history) - 1,
        "whole_loss_start": best.start if best is not None else None, "whole_loss_kept": best.loss if best is not None else None,
        "seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip


def _prepare(qdq: onnx.ModelProto, fp32: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], crop: float) -> _Run:
    name = fp32.graph.input[0].name
    images = torch.from_numpy(np.concatenate([f[name] for f in feeds]))
    imgsz = tuple(images.shape[2:])
    student, teacher = (TorchGraph(resizes_by_scale(m, name, imgsz)) for m in (qdq, fp32))
    targets = distill_targets(fp32)
    local = all(is_local(g, [name], targets) for g in (student, teacher))
    return _Run(student, teacher, images, name, targets, crop if local else 1.0)


def _ste_weights(graph: TorchGraph, fp32: onnx.ModelProto) -> dict[str, STEWeight]:
    """Swap every quantized weight for an ``STEWeight`` that starts on the model's own integer ``q``: the latent is
    ``W / scale`` where ``q`` is its nearest integer (clipped just inside the rounding interval), ``q`` itself where the
    model rounded the other way (a reconstructed start) or has no FP32 weight, so the start model is kept exactly."""
    floats = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    out = {}
    for name in graph.weight_keys:
        fixed = graph.weight(name)
        q, scale = fixed.integers(), fixed.scale.numpy()
        residual = floats[name] / scale - q if name in floats else np.zeros(q.shape)
        residual = np.where(np.abs(residual) <= 0.5, np.clip(residual, -HALF_STEP, HALF_STEP), 0.0)
        qmax = int(np.abs(q).max()) or 127  # MinMax grids reach +-qmax in some channel
        out[name] = STEWeight(q + residual, scale.ravel(), fixed.axis, qmax)
        graph.set_weight(name, out[name])
    return out


def _bias_deltas(graph: TorchGraph) -> list[nn.Parameter]:
    return [bias.delta.requires_grad_(True) for bias in graph.biases.values()]


def _cosine(epoch: int, epochs: int, steps: int) -> list[float]:
    """Learning-rate factors of an epoch's steps: cosine from 1 to 0 over the whole run."""
    total = max(1, epochs * steps)
    return [0.5 * (1 + math.cos(math.pi * (epoch * steps + i) / total)) for i in range(steps)]


def _epoch(run: _Run, s: Settings, optimizer, averaged: ParamEMA | None, weights: dict[str, STEWeight], epoch: int,
           schedule: list[float]) -> dict:  # fmt: skip
    """One pass over the images (its own RNG stream); the mean loss and the weights whose integer flipped."""
    rng = np.random.default_rng([s.seed, epoch])
    order = rng.permutation(len(run.images))
    flips, flips_ema = FlipCounter(), FlipCounter()
    scale_params = {id(p) for a in run.student.acts.values() for p in [a.scale]}
    losses = []
    run.student.train()
    for i, factor in zip(range(0, len(order), s.batch), schedule):
        x = _crop(run, run.images[torch.from_numpy(np.sort(order[i : i + s.batch]))], rng)
        with torch.no_grad():
            target = run.teacher({run.input_name: x}, run.targets)
        loss = distill_loss(run.student({run.input_name: x}, run.targets), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        optimizer.step()
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if id(p) in scale_params:
                        p.clamp_(min=MIN_SCALE)
        losses.append(loss.item())
        flips.observe([w.grid() for w in weights.values()])
        if averaged is not None:
            averaged.update()
            flips_ema.observe([w.grid(latent) for w, latent in zip(weights.values(), averaged.shadow)])
    run.student.eval()
    row = {"loss": float(np.mean(losses)), "steps": len(losses), "flipped_weights": flips.weights, "flip_events": flips.events}
    if averaged is not None:
        row |= {"flipped_ema": flips_ema.weights, "flip_events_ema": flips_ema.events}
    return row


def _correct(run: _Run, s: Settings, scales: list[nn.Parameter], deltas: list[nn.Parameter]) -> list[dict]:
    """QC: the weights frozen, the step sizes and biases refit for ``qc_epochs`` at the starting learning rates."""
    optimizer = torch.optim.Adam([{"params": deltas, "lr": s.bias_lr}, *({"params": [p], "lr": s.scale_lr * float(p.detach())} for p in scales)])
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    steps = math.ceil(len(run.images) / s.batch)
    return [{"epoch": s.epochs + e, **_epoch(run, s, optimizer, None, {}, s.epochs + e, [1.0] * steps)} for e in range(s.qc_epochs)]


def _crop(run: _Run, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    if run.crop >= 1:
        return x
    rows, cols = random_window(rng, x.shape[2], x.shape[3], run.crop)
    return x[:, :, rows, cols]


def _whole_loss(run: _Run, images: torch.Tensor, batch: int) -> float:
    """``distill_loss`` over ``images``, whole, quantized exactly as the exported model (no gradients; energies summed
    ``batch`` images at a time)."""
    run.student.eval()
    meter = SqnrMeter()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = {run.input_name: images[i : i + batch]}
            meter.update(run.teacher(x, run.targets), run.student(x, run.targets), run.targets)
    return sum(meter.noise[t] / max(meter.signal[t], 1e-12) for t in run.targets)


def _assign(params: list[nn.Parameter], values: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def _consider(run: _Run, s: Settings, params: list[nn.Parameter], averaged: ParamEMA | None, best: _Best, epoch: int) -> float:
    """The whole-image loss of this epoch's parameters (averaged, with the EMA); they become ``best`` if lower."""
    current = [p.detach().clone() for p in params]
    _assign(params, averaged.shadow if averaged is not None else current)
    loss = _whole_loss(run, run.images, s.batch)
    if loss < best.loss:
        best.loss, best.epoch, best.values = loss, epoch, [p.detach().clone() for p in params]
    _assign(params, current)
    return loss


def _save(path: str | os.PathLike, s: Settings, fingerprint: str, student: TorchGraph, optimizer, averaged: ParamEMA | None,
          history: list[dict], best: _Best | None) -> None:  # fmt: skip
    buffer = io.BytesIO()
    torch.save({"settings": asdict(s), "fingerprint": fingerprint, "student": student.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": averaged.state_dict() if averaged is not None else None, "history": history,
                "best": asdict(best) if best is not None else None}, buffer)  # fmt: skip
    write_bytes_atomic(path, buffer.getvalue())


def _load(path: str | os.PathLike, s: Settings, fingerprint: str, student: TorchGraph, optimizer,
          averaged: ParamEMA | None) -> tuple[list[dict], dict | None]:  # fmt: skip
    """Restore a checkpoint of this run (same model, images and settings) into the arguments; returns its history and
    its kept parameters (``_Best``'s fields; None without ``keep_best``)."""
    try:
        state = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise QyoloError(f"{path}: no checkpoint to resume from") from None
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise QyoloError(f"{path}: not a readable QAT checkpoint ({type(exc).__name__})") from None
    if state.get("fingerprint") != fingerprint or state.get("settings") != asdict(s):
        raise QyoloError(f"{path} is a checkpoint of another run (model, images or settings differ); start without resume")
    student.load_state_dict(state["student"])
    optimizer.load_state_dict(state["optimizer"])
    if averaged is not None:
        averaged.load_state_dict(state["ema"])
    return state["history"], state["best"]
