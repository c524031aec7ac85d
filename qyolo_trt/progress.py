"""Progress bars on stderr, silent when stderr is not a terminal (CI, pipes, --json consumers)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr, disabled when stderr is not a TTY."""
    return iter(progress_bar(iterable, total=total, desc=desc, unit=unit))


def progress_bar(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", unit: str = "it") -> tqdm:
    """The tqdm bar itself (for ``set_postfix`` and friends), on stderr, disabled when stderr is not a TTY."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)
