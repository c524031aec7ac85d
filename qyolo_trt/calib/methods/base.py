"""What a calibration method is (histogram + options -> range) and its registry, filled by ``@register``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...defaults import DEFAULT_BITS, DEFAULT_PERCENTILE
from ..histogram import Histogram
from ..scales import TensorRange


@dataclass(frozen=True)
class MethodOptions:
    """Method parameters (recorded in the scales file)."""

    percentile: float = DEFAULT_PERCENTILE
    bits: int = DEFAULT_BITS  # integer grid the clips are searched for (low-bit simulation: 4, 6)

    @property
    def qmax(self) -> int:
        """Largest level of the symmetric grid [-qmax, qmax] (127 for 8 bits)."""
        return 2 ** (self.bits - 1) - 1

    @property
    def steps(self) -> int:
        """Steps of the asymmetric grid (255 for 8 bits)."""
        return 2**self.bits - 1


Method = Callable[[Histogram, MethodOptions], TensorRange]
METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    """Register a calibration method under ``name`` (one module per method in this package)."""

    def deco(method: Method) -> Method:
        METHODS[name] = method
        return method

    return deco
