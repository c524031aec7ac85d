"""The pass interface of the quantize pipeline, and its registry (the order passes run in).

A pass is one file in this folder: a class registered with ``@register(order)`` that says from the config whether
it runs (``enabled``) and turns a ``QuantizeResult`` into the next one (``apply``). It reads images through the
context (loaded once, on first use) and never imports the analysis package: what it needs from there (the
sensitivity ranking, the output probe) the composing function, ``qyolo_trt.qdq.pipeline.run``, puts in the context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import onnx

from ...calib.scales import ScalesFile
from ...data.feeds import Feeds, load_feeds
from ...defaults import default_calib
from ..config import ImageSource, QuantizeConfig
from ..quantize import QuantizeResult, store_report


@dataclass
class PassContext:
    """What a pass may use besides the current result: the run's inputs, the rewrite, images, analysis hooks."""

    fp32: onnx.ModelProto  # normalized FP32 model
    scales: ScalesFile
    config: QuantizeConfig
    rewrite: Callable[[QuantizeConfig], QuantizeResult]  # the Q/DQ rewrite of fp32 under another config
    rank: Callable[[Sequence[Feeds]], Any]  # -> analysis.sensitivity.SensitivityResult for config on feeds
    probe: Callable[[Sequence[Feeds], list[str]], Any]  # -> analysis.probe.OutputProbe (FP32 outputs cached)
    _feeds: dict[tuple[str, int], list[Feeds]] = field(default_factory=dict)

    def feeds(self, images: ImageSource | None, num_images: int) -> list[Feeds]:
        """The first ``num_images`` of ``images`` (None: the embedded calib_data/) as model inputs, loaded once."""
        images = images or default_calib()
        key = (repr(images), num_images)
        if key not in self._feeds:
            self._feeds[key] = load_feeds(self.fp32, images, num_images)
        return self._feeds[key]


class Pass(Protocol):
    """One step after the rewrite. ``name`` keys its entry in the report."""

    name: ClassVar[str]

    def enabled(self, config: QuantizeConfig) -> bool: ...

    def apply(self, result: QuantizeResult, fp32: onnx.ModelProto, ctx: PassContext) -> QuantizeResult: ...


_REGISTRY: list[tuple[int, Pass]] = []


def register(order: int) -> Callable[[type], type]:
    """Register a pass class (instantiated once); passes run by ascending ``order``."""

    def deco(cls: type) -> type:
        _REGISTRY.append((order, cls()))
        _REGISTRY.sort(key=lambda item: item[0])
        return cls

    return deco


def registered() -> list[Pass]:
    """The registered passes in the order they run."""
    return [p for _, p in _REGISTRY]


def with_report(model: onnx.ModelProto, report: dict[str, Any]) -> QuantizeResult:
    """A result whose model carries ``report`` in its metadata."""
    store_report(model, report)
    return QuantizeResult(model, report)
