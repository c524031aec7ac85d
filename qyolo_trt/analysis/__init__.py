"""Beyond the paper: layer sensitivity (it ranks the float fallback pass's units), histogram plots, extra compare rows."""

from ..data.feeds import load_feeds
from .sensitivity import LayerScore, SensitivityResult, Unit, layer_sensitivity, quantized_units

__all__ = ["LayerScore", "SensitivityResult", "Unit", "layer_sensitivity", "load_feeds", "quantized_units"]
