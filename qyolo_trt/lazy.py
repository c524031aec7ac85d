"""Lazy imports of optional heavy dependencies, with one clear message when absent (Polygraphy-style)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DependencyError


def lazy_import(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` now, or raise a one-line ``DependencyError`` naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - broken native libs raise OSError etc.
        raise DependencyError(
            f"{what or module} is not available ({type(exc).__name__}: {exc}); install it with: pip install 'qyolo-trt[{extra}]'"
        ) from None
