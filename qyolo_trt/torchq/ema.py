"""Weight averaging and oscillation counting for QAT (Gupta & Asthana, "Reducing the side-effects of oscillations in
training of quantized YOLO networks", 2023: EMA of the latent weights damps the flipping between grid points).

- ``ParamEMA``: exponential moving average of a list of parameters (decay warmed up as ``(1 + n) / (10 + n)``).
- ``FlipCounter``: over consecutive steps, how many weights changed their integer at least once, and how often.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..lazy import lazy_import

torch = lazy_import("torch", "export", "torch (qyolo_trt.torchq)")


class ParamEMA:
    """Shadow copies of ``params``, updated after each optimiser step; ``apply()`` copies them into the parameters."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay, self.updates = decay, 0

    def update(self) -> None:
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                s.lerp_(p.detach(), 1 - keep)

    def apply(self) -> None:
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                p.copy_(s)

    def state_dict(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.shadow = [s.clone() for s in state["shadow"]]
        self.updates = int(state["updates"])


class FlipCounter:
    """Feed it the integer weights after every step: counts the weights that changed (``weights``) and the changes."""

    def __init__(self) -> None:
        self.previous: list[torch.Tensor] | None = None
        self.changed: list[torch.Tensor] = []
        self.events = 0

    def observe(self, integers: Sequence[torch.Tensor]) -> None:
        if self.previous is None:
            self.changed = [torch.zeros_like(q, dtype=torch.bool) for q in integers]
        else:
            for seen, before, now in zip(self.changed, self.previous, integers):
                diff = before != now
                seen |= diff
                self.events += int(diff.sum())
        self.previous = list(integers)

    @property
    def weights(self) -> int:
        return int(sum(int(c.sum()) for c in self.changed))
