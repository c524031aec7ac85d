"""The quantize recipe: option combinations refused up front; a plain recipe is exactly `quantize`."""

from __future__ import annotations

import pytest
from qdq_graphs import fixed_scales, tiny_detector

from qyolo_trt.errors import QyoloError
from qyolo_trt.qdq import quantize
from qyolo_trt.recipe import Recipe, apply


@pytest.mark.parametrize(
    ("recipe", "words"),
    [
        (Recipe(fallback_k=1, fallback_db=30.0), "at most one of --auto-fallback, --fallback-budget"),
        (Recipe(fallback_k=1, bits=4), "--bits below 8"),
        (Recipe(fallback_db=30.0, weight_clip="mse"), "--weight-clip mse"),
        (Recipe(bias_correction=True, bits=4), "--bias-correction"),
    ],
)
def test_incompatible_options_are_refused_before_any_work(recipe: Recipe, words: str) -> None:
    with pytest.raises(QyoloError, match=words):
        apply(tiny_detector(), fixed_scales(tiny_detector()), recipe)


@pytest.mark.parametrize("mode", ["symmetric", "shifted"])
def test_plain_recipe_is_quantize(mode: str) -> None:
    model = tiny_detector()
    scales = fixed_scales(model)
    got = apply(model, scales, Recipe(mode=mode))
    want = quantize(model, scales, mode=mode)
    assert got.model.SerializeToString() == want.model.SerializeToString()
    assert got.report == want.report and "bias_correction" not in got.report
