"""The small interface every runtime backend implements (after Polygraphy's runners)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np


class Runner(ABC):
    """Loads one artifact and runs inference on it. Use as a context manager:

    ``with get_runner("ort", "m.onnx") as r: outputs = r.infer({r.input_name: x})``
    """

    name: str = "base"

    def __init__(self, artifact: str | os.PathLike, **options: Any) -> None:
        self.artifact = Path(artifact)
        self.options = options
        self.active = False

    @abstractmethod
    def activate(self) -> None:
        """Load the artifact (sessions, engines, device buffers)."""

    def deactivate(self) -> None:
        """Release what ``activate`` acquired."""
        self.active = False

    @abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns every graph output by name."""

    @property
    @abstractmethod
    def input_name(self) -> str:
        """Name of the (single) image input."""

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """Names of the outputs, in graph order."""

    def describe(self) -> dict[str, Any]:
        """Backend, artifact and settings, for reports."""
        return {"backend": self.name, "artifact": str(self.artifact), **self.options}

    def __enter__(self) -> "Runner":
        self.activate()
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
