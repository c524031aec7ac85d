"""The passes of the quantize pipeline, one module each; importing this package registers every module in it."""

import importlib
import pkgutil

from .base import Pass, PassContext, register, registered

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Pass", "PassContext", "register", "registered"]
