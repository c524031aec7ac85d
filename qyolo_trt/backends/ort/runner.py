"""Runner over an ONNX Runtime CPU session."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import QyoloError
from ...model import load_onnx
from ..base import Runner
from .session import make_session


def _loadable(path: Path) -> str | bytes:
    """The model ORT should load: the path itself, or, for an end-to-end ``--nms`` graph, its CPU emulation."""
    model = load_onnx(path)
    from ...deploy.nms import PLUGIN_OP
    from ...deploy.nms_emulation import emulate_efficient_nms

    if not any(n.op_type == PLUGIN_OP for n in model.graph.node):
        return str(path)

    return emulate_efficient_nms(model).SerializeToString()


class OrtRunner(Runner):
    """ONNX Runtime on CPU. Options: ``threads`` (intra-op threads, 0 = default)."""

    name = "ort"

    def _activate_impl(self) -> None:
        try:
            self.session = make_session(_loadable(self.artifact), threads=int(self.options.get("threads", 0)))
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
