"""ONNX Runtime session construction with the settings every qyolo-trt caller wants."""

from __future__ import annotations

import onnxruntime as ort

ort.set_default_logger_severity(3)  # ORT's own coloured multi-line log must not precede our one error line


def make_session(model: str | bytes, threads: int = 0, optimize: bool = True, qdq_fusion: bool = True) -> ort.InferenceSession:
    """A CPU InferenceSession; no spinning (noisy shared machines), ``threads`` intra-op threads (0: ORT default);
    ``qdq_fusion`` False keeps Q/DQ pairs as such (float16-scale models, which ORT's QLinear* kernels reject)."""
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if not qdq_fusion:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
