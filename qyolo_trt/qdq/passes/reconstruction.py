"""A pass: reconstruction PTQ. Each quantized conv's integer weights get a learned rounding (AdaRound) and its float
bias a refit, optimised block by block against the FP32 model's block outputs on the calibration images (BRECQ, with
QDrop's random dropping of activation quantization). Placement, activation scales and the shifted-symmetric bias fold
are kept: the result is the same TensorRT-compatible QDQ graph with other integers. Torch is imported only when it runs.
"""

from __future__ import annotations

import onnx

from ...data.feeds import count_images
from ..config import QuantizeConfig
from ..quantize import QuantizeResult
from .base import PassContext, register, with_report


REPORTED = ("iters", "seed", "drop_prob", "refit_bias", "weights", "loss_before", "loss_after")


@register(order=30)
class ReconstructionPass:
    name = "reconstruction"

    def enabled(self, config: QuantizeConfig) -> bool:
        return config.reconstruct

    def apply(self, result: QuantizeResult, fp32: onnx.ModelProto, ctx: PassContext) -> QuantizeResult:
        """``result`` with learned weight rounding and refitted biases; the report gets the losses per block."""
        from ...torchq.reconstruct import reconstruct  # torch: one error line when it is absent

        c = ctx.config
        feeds = ctx.feeds(c.reconstruct_images, c.reconstruct_num_images)
        model, stats = reconstruct(result.model, fp32, feeds, iters=c.reconstruct_iters, seed=c.seed)
        summary = {k: stats[k] for k in REPORTED}  # not the wall time: the stored report (and the model's bytes) stay deterministic
        return with_report(model, {**result.report, "reconstruction": {**summary, "images": count_images(feeds)}})
