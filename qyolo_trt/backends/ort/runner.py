"""Runner over an ONNX Runtime CPU session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ...errors import QyoloError
from ...model import load_onnx
from ..base import Runner
from .session import make_session


def _loadable(path: Path) -> tuple[str | bytes, bool]:
    """The model ORT should load: the path itself, or, for an end-to-end ``--nms`` graph, its CPU emulation; and whether
    ORT may fuse its Q/DQ pairs into QLinear* kernels (not with float16 scales: ORT's fused kernels take float32 only)."""
    model = load_onnx(path)
    from ...deploy.nms import PLUGIN_OP
    from ...deploy.nms_emulation import emulate_efficient_nms

    inits = {i.name: i.data_type for i in model.graph.initializer}
    half = any(n.op_type == "DequantizeLinear" and inits.get(n.input[1]) == onnx.TensorProto.FLOAT16 for n in model.graph.node)
    if not any(n.op_type == PLUGIN_OP for n in model.graph.node):
        return str(path), not half
    return emulate_efficient_nms(model).SerializeToString(), not half


class OrtRunner(Runner):
    """ONNX Runtime on CPU. Options: ``threads`` (intra-op threads, 0 = default)."""

    name = "ort"

    def _activate_impl(self) -> None:
        try:
            model, qdq_fusion = _loadable(self.artifact)
            self.session = make_session(model, threads=int(self.options.get("threads", 0)), qdq_fusion=qdq_fusion)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise QyoloError(f"{self.artifact}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None

    def _deactivate_impl(self) -> None:
        self.session = None

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, feeds)))
