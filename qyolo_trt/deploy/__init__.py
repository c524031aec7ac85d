"""Deployment outputs: an end-to-end EfficientNMS graph and a Triton model repository."""

from .nms import add_efficient_nms
from .nms_emulation import emulate_efficient_nms
from .triton import write_triton_repo

__all__ = ["add_efficient_nms", "emulate_efficient_nms", "write_triton_repo"]
