"""Placement rules: op type -> rule, one module per op family (importing them fills ``RULES``)."""

from . import add, concat, conv, pool_resize  # noqa: F401 - registration side effect
from .base import RULES, GraphView, Placement
from .head import Head, find_head, first_conv

__all__ = ["RULES", "GraphView", "Head", "Placement", "find_head", "first_conv"]
