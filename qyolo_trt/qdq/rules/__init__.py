"""Placement rules: op type -> rule, one module per op family (importing them fills ``RULES``); per-target profiles."""

from . import add, concat, conv, pool_resize, silu  # noqa: F401 - registration side effect
from .base import RULES, GraphView, Placement
from .head import Head, find_head, first_conv
from .profiles import PROFILES, Profile

__all__ = ["PROFILES", "RULES", "GraphView", "Head", "Placement", "Profile", "find_head", "first_conv"]
