"""Reconstruction PTQ of a QDQ model, label-free, with the FP32 model as the only teacher.

Blocks (``blocks.partition``: one ``/model.N/`` unit each) are optimised in dependency order. Each quantized weight of
the block gets AdaRound's learned rounding (Nagel et al. 2020: rectified sigmoid h(V), regulariser
``sum(1 - |2h - 1|^beta)`` with beta annealed 20 -> 2 after a 20% warm-up); the loss is the squared error of the
block's targets against the FP32 model's (BRECQ, Li et al. 2021). The block reads the quantized model's input (the
previous blocks already reconstructed), mixed value by value with the FP32 input, and every activation quantizer
inside it is skipped value by value, both with probability ``drop_prob`` (QDrop, Wei et al. 2022). Steps run on
``batch`` images cropped at random to ``crop`` of their side (blocks of spatially local ops only). Activation scales
stay the model's unless ``learn_scales``: then each block also learns the step sizes of the quantizers it runs (LSQ,
as QDrop does; ``scales.learnable_scales``: not the image input's), and a scale shared across blocks is learned by
the first block running it only. Float biases may be refitted. The learned integers (and scales) are written exactly (``writeback``).

Memory: a block's FP32 and quantized outputs for all images are kept only while a later block still reads them.
Deterministic for a seed and a torch thread count (``threads``; default: torch's own, the core count).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..defaults import (
    RECONSTRUCT_BATCH,
    RECONSTRUCT_BIAS_LR,
    RECONSTRUCT_CROP,
    RECONSTRUCT_DROP_PROB,
    RECONSTRUCT_ITERS,
    RECONSTRUCT_LEARN_SCALES,
    RECONSTRUCT_LR,
    RECONSTRUCT_SCALE_LR,
)
from ..errors import QyoloError
from ..lazy import lazy_import
from ..normalize import normalize
from ..progress import progress_bar
from .blocks import Block, is_local, partition
from .graph import TorchGraph
from .quantizers import AdaRoundWeight, FixedWeight
from .scales import learnable_scales
from .writeback import write_act_scales, write_back

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")

REG_WEIGHT = 10.0  # rounding regulariser at full strength, relative to the block's round-to-nearest loss (binarises in ~200 steps)
WARMUP = 0.2  # share of the steps without the regulariser
BETA = (20.0, 2.0)  # regulariser exponent, annealed from BETA[0] to BETA[1] after the warm-up
MIN_CROP = 32  # crops never go below this side (pixels of the coarsest input): small crops are mostly border
Tensors = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class Settings:
    iters: int
    batch: int
    crop: float
    drop_prob: float
    lr: float
    bias_lr: float
    refit_bias: bool
    scale_lr: float  # Adam step of a learned activation scale, relative to its value


def reconstruct(
    qdq: onnx.ModelProto,
    fp32: onnx.ModelProto,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    iters: int = RECONSTRUCT_ITERS,
    seed: int = 0,
    drop_prob: float = RECONSTRUCT_DROP_PROB,
    refit_bias: bool = True,
    batch: int = RECONSTRUCT_BATCH,
    crop: float = RECONSTRUCT_CROP,
    lr: float = RECONSTRUCT_LR,
    bias_lr: float = RECONSTRUCT_BIAS_LR,
    learn_scales: bool = RECONSTRUCT_LEARN_SCALES,
    scale_lr: float = RECONSTRUCT_SCALE_LR,
    threads: int | None = None,
) -> tuple[onnx.ModelProto, dict]:
    """The QDQ model (same graph, same Q/DQ placement; the same activation scales unless ``learn_scales``) with learned
    per-channel weight rounding (and refitted float biases), plus stats (per block: loss before/after, iters, seconds; totals)."""
    if iters < 0 or batch < 1 or not 0 < crop <= 1 or not 0 <= drop_prob <= 1 or not feeds:
        raise QyoloError(f"reconstruct: need iters >= 0, batch >= 1, 0 < crop <= 1, 0 <= drop_prob <= 1 and images "
                         f"(got {iters}, {batch}, {crop}, {drop_prob}, {len(feeds)} feeds)")  # fmt: skip
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    settings = Settings(iters, batch, crop, drop_prob, lr, bias_lr, refit_bias, scale_lr)
    fp32 = normalize(fp32)
    qgraph, fgraph = TorchGraph(qdq), TorchGraph(fp32)
    floats = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    blocks = partition(qgraph)
    scales = _Scales(qgraph, learn_scales)
    name = qgraph.input_names[0]
    images = torch.from_numpy(np.concatenate([f[name] for f in feeds]))
    cache = _Cache(blocks, {name: images})
    start, rows, learned = time.perf_counter(), [], []
    for block in blocks:
        fp_in, q_in = cache.inputs(block)
        learn = bool(block.weights and iters)
        kept = cache.kept(block)
        fp_out = _chunked(fgraph, fp_in, kept + (block.targets if learn else []), batch)
        if learn:
            rows.append(_optimise(qgraph, fgraph, block, fp_in, q_in, fp_out, floats, settings, rng, scales))
            learned += block.weights
        cache.store(block, fp_out, _chunked(qgraph, q_in, kept, batch))
    stats = {
        "blocks": rows,
        "images": len(images),
        "iters": iters,
        "seed": seed,
        "drop_prob": drop_prob,
        "refit_bias": refit_bias,
        "learn_scales": learn_scales,
        "threads": torch.get_num_threads(),
        "weights": len(learned),
        "seconds": round(time.perf_counter() - start, 2),
        "loss_before": float(sum(r["loss_before"] for r in rows)),
        "loss_after": float(sum(r["loss_after"] for r in rows)),
    }
    model = write_back(qdq, qgraph, learned)
    return (write_act_scales(model, qgraph) if learn_scales else model), stats


class _Scales:
    """The learnable activation scales (none unless ``learn``), each handed to the first block that runs it."""

    def __init__(self, graph: TorchGraph, learn: bool) -> None:
        self.graph = graph
        self.params = learnable_scales(graph) if learn else {}
        for param in self.params.values():
            param.requires_grad_(False)
        self.taken: set[int] = set()

    def claim(self, block: Block) -> list:
        """The not yet learned scales of the quantizers ``block`` runs (from its raw inputs to its targets)."""
        plan = self.graph.plan(tuple(sorted(block.raw_inputs)), tuple(block.targets))
        params = [self.params[s.key] for s, _ in plan if s.op == "ActQuant" and s.key in self.params]
        claimed = list({id(p): p for p in params if id(p) not in self.taken}.values())
        self.taken.update(id(p) for p in claimed)
        return claimed


class _Cache:
    """Each block output for all images, FP32 and quantized, kept until the last block reading it has run."""

    def __init__(self, blocks: list[Block], inputs: Tensors) -> None:
        self.fp, self.q = dict(inputs), dict(inputs)
        self.last = {n: i for i, b in enumerate(blocks) for n in b.raw_inputs}
        self.done = 0

    def inputs(self, block: Block) -> tuple[Tensors, Tensors]:
        return {n: self.fp[n] for n in block.raw_inputs}, {n: self.q[n] for n in block.raw_inputs}

    def kept(self, block: Block) -> list[str]:
        """The block's outputs a later block reads."""
        return [n for n in block.outputs if self.last.get(n, -1) > self.done]

    def store(self, block: Block, fp: Tensors, q: Tensors) -> None:
        for name in self.kept(block):
            self.fp[name], self.q[name] = fp[name], q[name]
        for name in block.raw_inputs:
            if self.last[name] == self.done:
                self.fp.pop(name), self.q.pop(name)
        self.done += 1


def _chunked(graph: TorchGraph, inputs: Tensors, outputs: list[str], batch: int) -> Tensors:
    """``graph(inputs, outputs)`` over all images, ``batch`` at a time (no gradients, no dropping)."""
    graph.eval()
    n = len(next(iter(inputs.values())))
    parts: dict[str, list] = {o: [] for o in outputs}
    if not parts:
        return {}
    with torch.no_grad():
        for i in range(0, n, batch):
            out = graph({k: v[i : i + batch] for k, v in inputs.items()}, list(dict.fromkeys(outputs)))
            for o in parts:
                parts[o].append(out[o])
    return {o: torch.cat(v) for o, v in parts.items()}


def _loss(out: Tensors, target: Tensors) -> torch.Tensor:
    """Squared error summed over channels, averaged over images and positions, summed over the targets."""
    return sum((out[t] - target[t]).square().sum(dim=1).mean() for t in target)


def _optimise(qgraph: TorchGraph, fgraph: TorchGraph, block: Block, fp_in: Tensors, q_in: Tensors, fp_out: Tensors,
              floats: dict[str, np.ndarray], s: Settings, rng: np.random.Generator, scales: _Scales) -> dict:  # fmt: skip
    """Learn the rounding (bias refit, activation scales) of one block; its weights end as ``FixedWeight`` of the
    learned integers, its scales frozen."""
    start = time.perf_counter()
    original = {w: qgraph.weight(w).integers() for w in block.weights}
    rounders = {w: _adaround(qgraph, w, floats) for w in block.weights}
    for w, module in rounders.items():
        qgraph.set_weight(w, module)
    deltas = [qgraph.bias(c).delta.requires_grad_(s.refit_bias) for c in block.convs]
    groups = [{"params": [m.alpha for m in rounders.values()], "lr": s.lr}]
    if s.refit_bias and deltas:
        groups.append({"params": deltas, "lr": s.bias_lr})
    steps = scales.claim(block)
    initial = [float(p) for p in steps]
    for p, value in zip(steps, initial):
        groups.append({"params": [p.requires_grad_(True)], "lr": s.scale_lr * value})
    optimizer = torch.optim.Adam(groups)
    probe = ({k: v[: s.batch] for k, v in q_in.items()}, {t: fp_out[t][: s.batch] for t in block.targets})
    before = _evaluate(qgraph, block, *probe, rounders)
    s_reg = REG_WEIGHT * before / sum(m.alpha.numel() for m in rounders.values())  # full penalty ~ REG_WEIGHT x RTN loss
    local = s.crop < 1 and is_local(qgraph, block.inputs, block.targets) and is_local(fgraph, block.raw_inputs, block.targets)
    bar = progress_bar(range(s.iters), desc=f"reconstruct {block.name}", unit="step")
    images = len(q_in[block.raw_inputs[0]])
    for step in bar:
        idx = torch.from_numpy(np.sort(rng.choice(images, size=min(s.batch, images), replace=False)))
        window = _window(q_in, s.crop, rng) if local else None
        x_fp = {k: _crop(v[idx], window) for k, v in fp_in.items()}
        x_q = {k: _crop(v[idx], window) for k, v in q_in.items()}
        with torch.no_grad():
            target = fgraph(x_fp, block.targets)
        mixed = _mixed(qgraph, block, x_fp, x_q, s.drop_prob)
        qgraph.train()
        _set_drop(qgraph, s.drop_prob)
        rec = _loss(qgraph(mixed, block.targets), target)
        beta = _beta(step, s.iters)
        reg = s_reg * sum(m.regularizer(beta) for m in rounders.values()) if beta is not None else 0.0
        optimizer.zero_grad(set_to_none=True)
        (rec + reg).backward()
        optimizer.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{rec.item():.4g}")
    _set_drop(qgraph, 0.0)
    after = _evaluate(qgraph, block, *probe, rounders)
    kept = after < before  # never worse than round-to-nearest on the probe images
    for w, module in rounders.items():
        q = module.integers() if kept else original[w]
        qgraph.set_weight(w, FixedWeight(q, module.scale.numpy().ravel(), module.axis))
    for delta in deltas:
        delta.requires_grad_(False)
        if not kept:
            delta.zero_()
    with torch.no_grad():
        for p, value in zip(steps, initial):
            p.requires_grad_(False)
            if not kept:
                p.fill_(value)
    changed = sum(int((qgraph.weight(w).integers() != q).sum()) for w, q in original.items())
    return {"block": block.name, "weights": len(rounders), "loss_before": before, "loss_after": min(after, before),
            "kept": kept, "iters": s.iters, "changed": changed, "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def _adaround(graph: TorchGraph, name: str, floats: dict[str, np.ndarray]) -> AdaRoundWeight:
    """AdaRound over the model's grid for weight ``name`` (the FP32 weight; the stored one when it has none)."""
    fixed = graph.weight(name)
    q = fixed.integers()
    qmax = int(np.abs(q).max()) or 127  # MinMax grids reach +-qmax in some channel: 127 (int8), 7 (int4), ...
    weight = floats.get(name, fixed().detach().numpy())
    return AdaRoundWeight(weight, fixed.scale.numpy().ravel(), fixed.axis, qmax)


def _evaluate(graph: TorchGraph, block: Block, q_in: Tensors, target: Tensors, rounders: dict) -> float:
    """The block's loss with hard rounding on the quantized input (no dropping)."""
    for m in rounders.values():
        m.hard = True
    graph.eval()
    with torch.no_grad():
        loss = float(_loss(graph(q_in, block.targets), target))
    for m in rounders.values():
        m.hard = False
    return loss


def _mixed(graph: TorchGraph, block: Block, x_fp: Tensors, x_q: Tensors, drop_prob: float) -> Tensors:
    """The block's quantized inputs (differentiable in learnable input scales), each value replaced by its FP32
    counterpart with probability ``drop_prob``."""
    graph.eval()
    quantized = graph(x_q, block.inputs)
    if drop_prob == 0:
        return quantized
    graph.set_quantization(False)
    with torch.no_grad():
        plain = graph(x_fp, block.inputs)
    graph.set_quantization(True)
    return {n: torch.where(torch.rand_like(v) < drop_prob, plain[n], v) for n, v in quantized.items()}


def _set_drop(graph: TorchGraph, drop_prob: float) -> None:
    for module in graph.acts.values():
        module.drop_prob = drop_prob


def _beta(step: int, iters: int) -> float | None:
    """The regulariser exponent at ``step`` (None during the warm-up)."""
    warm = int(WARMUP * iters)
    if step < warm:
        return None
    return BETA[0] + (BETA[1] - BETA[0]) * (step - warm) / max(1, iters - warm)


def _window(inputs: Tensors, crop: float, rng: np.random.Generator) -> tuple[float, float, float, float] | None:
    """A random crop (top, left, height, width as fractions of the side) on the coarsest input's grid, or None."""
    shapes = [v.shape for v in inputs.values()]
    if any(len(sh) != 4 for sh in shapes):
        return None
    h, w = min(sh[2] for sh in shapes), min(sh[3] for sh in shapes)
    ch, cw = min(h, max(MIN_CROP, round(crop * h))), min(w, max(MIN_CROP, round(crop * w)))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return top / h, left / w, ch / h, cw / w


def _crop(x: torch.Tensor, window: tuple[float, float, float, float] | None) -> torch.Tensor:
    if window is None:
        return x
    top, left, height, width = window
    h, w = x.shape[2], x.shape[3]
    return x[:, :, round(top * h) : round((top + height) * h), round(left * w) : round((left + width) * w)]
