"""Shared CLI plumbing: --json, output, logging to stderr."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..defaults import EVAL_CONF, EVAL_IOU, EVAL_MAX_DET

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf (click's own range lets nan through every bound)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        out = super().convert(value, param, ctx)
        if not math.isfinite(out):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return out


def json_option(f: F) -> F:
    """Add ``--json``: one JSON object on stdout, logs on stderr."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (logs go to stderr).")(f)


def post_options(f: F) -> F:
    """``--conf``, ``--iou``, ``--max-det``: evaluation post-processing, defaults from ``qyolo_trt.defaults``."""
    f = click.option("--max-det", type=click.IntRange(1), default=EVAL_MAX_DET, show_default=True, help="Detections kept per image.")(f)
    f = click.option("--iou", type=FiniteFloatRange(0, 1), default=EVAL_IOU, show_default=True, help="NMS IoU threshold.")(f)
    return click.option("--conf", type=FiniteFloatRange(0, 1), default=EVAL_CONF, show_default=True, help="Confidence threshold.")(f)


def log(msg: str) -> None:
    """A log line on stderr (stdout is reserved for results)."""
    click.echo(msg, err=True)


def emit(result: dict[str, Any], as_json: bool, text: str | Callable[[dict[str, Any]], str]) -> None:
    """Print ``result`` as JSON, or as human text (a string, or a function of the result)."""
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True, default=_jsonable))
    else:
        click.echo(text(result) if callable(text) else text)


def split_csv(value: str) -> list[str]:
    """A comma-separated option as its non-empty, stripped items."""
    return [v.strip() for v in value.split(",") if v.strip()]


def keep_float_parts(value: str | None) -> tuple[str, ...] | None:
    """``--keep-float``: a comma list of parts kept float; ``none`` (or nothing) keeps none; None: the default."""
    return None if value is None else tuple(p for p in split_csv(value) if p != "none")


def format_table(rows: list[dict[str, Any]], columns: list[str], floatfmt: str = ".4f") -> str:
    """A plain, aligned text table (also valid Markdown)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), sep, *(line(b) for b in body)])


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
