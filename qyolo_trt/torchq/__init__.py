"""Torch-side quantization passes: differentiable execution of (QDQ) ONNX graphs and reconstruction PTQ.

Torch lives only here and is imported when one of these modules is (``qyolo_trt.lazy.lazy_import``): without
torch, importing ``qyolo_trt.torchq.graph`` or ``.reconstruct`` raises one ``DependencyError`` line.

- ``ops``: ONNX op -> torch function table (the ops YOLO exports use).
- ``quantizers``: swappable fake-quantizer modules (activation, fixed weight, AdaRound weight, conv bias).
- ``graph``: ``TorchGraph``, an ONNX graph as a torch module that runs any subgraph (inputs -> outputs).
- ``blocks``: the graph cut into YOLO blocks (``/model.N/`` units) for block-wise reconstruction.
- ``reconstruct``: AdaRound + BRECQ-style blocks + QDrop, written back as exact integer weights.
"""
