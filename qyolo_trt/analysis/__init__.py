"""Beyond the paper: layer sensitivity with automatic float fallback, histogram plots, low-bit (W4A4) simulation."""

from ..data.feeds import load_feeds
from .fallback import auto_fallback
from .lowbit import lower_bits, quantize_bits
from .sensitivity import METRICS, LayerScore, SensitivityResult, Unit, layer_sensitivity, quantized_units

__all__ = [
    "METRICS",
    "LayerScore",
    "SensitivityResult",
    "Unit",
    "auto_fallback",
    "layer_sensitivity",
    "load_feeds",
    "lower_bits",
    "quantize_bits",
    "quantized_units",
]
