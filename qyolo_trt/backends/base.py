"""The small interface every runtime backend implements (after Polygraphy's runners): public ``activate`` / ``infer`` /
``deactivate`` check the runner's state and inputs, then call the backend's ``_activate_impl`` / ``_infer_impl`` /
``_deactivate_impl``."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QyoloError


class Runner(ABC):
    """Loads one artifact and runs inference on it. Use as a context manager:

    ``with get_runner("ort", "m.onnx") as r: outputs = r.infer({r.input_name: x})``
    """

    name: str = "base"

    def __init__(self, artifact: str | os.PathLike, **options: Any) -> None:
        self.artifact = Path(artifact)
        self.options = options
        self.active = False

    def activate(self) -> None:
        """Load the artifact (sessions, engines, device buffers)."""
        if self.active:
            raise QyoloError(f"{self.name} runner for {self.artifact} is already active")
        self._activate_impl()
        self.active = True

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns every graph output by name."""
        if not self.active:
            raise QyoloError(f"{self.name} runner for {self.artifact} is not active (use it in a `with` block)")
        if missing := [n for n in self.input_names if n not in feeds]:
            raise QyoloError(f"missing input {', '.join(map(repr, missing))} ({self.artifact} inputs: {', '.join(self.input_names)})")
        return self._infer_impl(feeds)

    def deactivate(self) -> None:
        """Release what ``activate`` acquired (nothing to do when not active)."""
        if self.active:
            self._deactivate_impl()
            self.active = False

    @abstractmethod
    def _activate_impl(self) -> None: ...

    @abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _deactivate_impl(self) -> None:  # noqa: B027 - a backend with nothing to release needs no override
        """Release the backend's resources."""

    @property
    @abstractmethod
    def input_name(self) -> str:
        """Name of the (single) image input."""

    @property
    def input_names(self) -> list[str]:
        """Every input ``infer`` needs."""
        return [self.input_name]

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """Names of the outputs, in graph order."""

    def describe(self) -> dict[str, Any]:
        """Backend, artifact and settings, for reports."""
        return {"backend": self.name, "artifact": str(self.artifact), **self.options}

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
