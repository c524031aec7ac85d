"""Fake-quantizer modules that ``TorchGraph`` plugs into an ONNX graph; swap them to change how a graph quantizes.

- ``ActQuant``: an activation Q -> DQ pair (optionally with the low-bit Clip after it): fixed or learnable step,
  straight-through rounding, QDrop (each value keeps its float self with probability ``drop_prob`` in training).
- Weight quantizers return the dequantized weight from ``forward()`` and their integers from ``integers()``:
  ``FixedWeight`` (the model's integers) and ``AdaRoundWeight`` (learned rounding, Nagel et al. 2020).
- ``ConvBias``: a quantized conv's float bias, ``base + shift * sum(W_dq)`` per output channel where the conv reads
  a shifted-symmetric input (qdq/rules/shift.py), so changing the integers keeps the shift exactly folded.
"""

from __future__ import annotations

import numpy as np

from ..lazy import lazy_import

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")
nn = torch.nn

ZETA, GAMMA = 1.1, -0.1  # AdaRound's rectified sigmoid stretch: h(V) = clip(sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _channel_shape(ndim: int, axis: int) -> list[int]:
    shape = [1] * ndim
    shape[axis] = -1
    return shape


class ActQuant(nn.Module):
    """Fake quantization ``(clamp(round(x / s) + zp, qmin, qmax) - zp) * s``; ``learn_scale`` makes ``s`` a parameter."""

    def __init__(self, scale: float, zero_point: int, qmin: int, qmax: int, learn_scale: bool = False) -> None:
        super().__init__()
        value = torch.tensor(float(scale), dtype=torch.float32)
        if learn_scale:
            self.scale = nn.Parameter(value)
        else:
            self.register_buffer("scale", value)
        self.zero_point, self.qmin, self.qmax = int(zero_point), int(qmin), int(qmax)
        self.enabled = True
        self.drop_prob = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if torch.is_grad_enabled() and (x.requires_grad or self.scale.requires_grad):
            out = self._fused(x)
        else:  # exactly QuantizeLinear's x / scale, rounded half to even
            out = torch.div(x, self.scale).round_().add_(self.zero_point).clamp_(self.qmin, self.qmax)
            out = out.sub_(self.zero_point).mul_(self.scale)
        if self.training and self.drop_prob > 0:
            out = torch.where(torch.rand_like(x) < self.drop_prob, x, out)
        return out

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        """torch's fake-quant kernels (straight-through; LSQ gradient for a learnable scale). They round x * (1 / s):
        a value on a rounding tie may land one step off ONNX Runtime's x / s, harmless while optimising."""
        if self.scale.requires_grad:
            zp = torch.tensor([float(self.zero_point)])
            return torch._fake_quantize_learnable_per_tensor_affine(x, self.scale.reshape(1), zp, self.qmin, self.qmax, 1.0)
        zp = torch.tensor(self.zero_point, dtype=torch.int32)
        return torch.fake_quantize_per_tensor_affine(x, self.scale, zp, self.qmin, self.qmax)


class FixedWeight(nn.Module):
    """Per-channel integer weight as stored in the model: ``q * scale`` (no gradient)."""

    def __init__(self, q: np.ndarray, scale: np.ndarray, axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.register_buffer("q", torch.from_numpy(q.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)).reshape(_channel_shape(q.ndim, axis)))

    def forward(self) -> torch.Tensor:
        return self.q * self.scale

    def integers(self) -> np.ndarray:
        return self.q.numpy().astype(np.int64)


class AdaRoundWeight(nn.Module):
    """Learned per-weight rounding: ``scale * clamp(floor(W / scale) + h(V), qmin, qmax)``.

    V starts where h(V) equals the residual ``W / scale - floor(W / scale)`` (the soft weight is the float weight);
    ``hard`` switches to the rounding the model will get, ``floor + (V >= 0)``."""

    def __init__(self, weight: np.ndarray, scale: np.ndarray, axis: int, qmax: int) -> None:
        super().__init__()
        self.axis, self.qmax = axis, int(qmax)
        s = torch.from_numpy(scale.astype(np.float32)).reshape(_channel_shape(weight.ndim, axis))
        w = torch.from_numpy(weight.astype(np.float32)) / s
        floor = torch.floor(w)
        rest = (w - floor).clamp(0.0, 1.0 - 1e-6)
        self.register_buffer("scale", s)
        self.register_buffer("floor", floor)
        self.alpha = nn.Parameter(-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1))
        self.hard = False

    def soft(self) -> torch.Tensor:
        """h(V) in [0, 1]."""
        return torch.clamp(torch.sigmoid(self.alpha) * (ZETA - GAMMA) + GAMMA, 0, 1)

    def regularizer(self, beta: float) -> torch.Tensor:
        """AdaRound's ``sum(1 - |2 h(V) - 1| ** beta)``: pushes every h(V) to 0 or 1 as beta anneals."""
        return (1 - (2 * self.soft() - 1).abs().pow(beta)).sum()

    def forward(self) -> torch.Tensor:
        up = (self.alpha >= 0).float() if self.hard else self.soft()
        return torch.clamp(self.floor + up, -self.qmax, self.qmax) * self.scale

    def integers(self) -> np.ndarray:
        return torch.clamp(self.floor + (self.alpha >= 0).float(), -self.qmax, self.qmax).detach().numpy().astype(np.int64)


class ConvBias(nn.Module):
    """A quantized conv's bias: ``base + delta + shift * sum(W_dq[o])`` (``shift`` 0 for an unshifted input).

    ``base`` (float64) is the model's bias with the shift fold taken out; ``delta`` is the learnable refit (frozen
    until ``delta.requires_grad_()``)."""

    def __init__(self, bias: np.ndarray, weight: np.ndarray, shift: float) -> None:
        super().__init__()
        self.shift = float(shift)
        self.register_buffer("base", torch.from_numpy(bias.astype(np.float64) - self.shift * _channel_sums(weight)))
        self.delta = nn.Parameter(torch.zeros(len(bias), dtype=torch.float32), requires_grad=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The bias in float64, then float32 (as ``exact``: the model's own bias while the integers are unchanged)."""
        bias = self.base + self.delta.double()
        return (bias + self.shift * weight.double().reshape(len(weight), -1).sum(dim=1) if self.shift else bias).float()

    def exact(self, weight: np.ndarray) -> np.ndarray:
        """The float32 bias for the final dequantized ``weight`` (float32 products, as at init), the shift term summed in
        float64: the model's own bias, bit for bit, while the integers and ``delta`` are unchanged."""
        base = self.base.numpy() + self.delta.detach().numpy().astype(np.float64)
        return (base + self.shift * _channel_sums(weight)).astype(np.float32)


def _channel_sums(weight: np.ndarray) -> np.ndarray:
    return weight.astype(np.float64).reshape(len(weight), -1).sum(axis=1)
