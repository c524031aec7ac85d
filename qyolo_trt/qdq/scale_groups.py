"""Shared-scale groups: tensors (or nodes) that must use one quantization scale, as disjoint sets (union-find).

The rewrite groups each Concat / MaxPool / Resize's inputs with its output (``qdq.quantize``); sensitivity merges the
nodes of one group into one unit (``analysis.sensitivity``). Both use this one helper.
"""

from __future__ import annotations

from collections.abc import Hashable


class ScaleGroups:
    """Disjoint sets of names with path halving; ``join(a, b)`` puts ``a``'s set under ``b``'s root."""

    def __init__(self) -> None:
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        """The root of ``x``'s set (``x`` joins as a set of its own if new)."""
        while self.parent.setdefault(x, x) != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: Hashable, b: Hashable) -> None:
        root = self.find(b)
        self.parent[self.find(a)] = root

    def members(self) -> dict[Hashable, list[Hashable]]:
        """root -> its members, in the order they were first seen."""
        out: dict[Hashable, list[Hashable]] = {}
        for name in list(self.parent):
            out.setdefault(self.find(name), []).append(name)
        return out
