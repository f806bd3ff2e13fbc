"""torchgeo-moemae: the metadata-aware mixture-of-experts masked autoencoder for Landsat.

Importing the package registers the timm models ``moemae_landsat``, ``moemae_landsat_xs`` and
``moemae_landsat_xxs``: at once if timm is already imported, else as soon as timm is (so that
``import torchgeo_moemae`` alone, e.g. ``moemae --help``, does not pay for torch).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "models"]


class _RegisterWithTimm(importlib.abc.MetaPathFinder):
    """Imports :mod:`torchgeo_moemae.models` (which registers the models) right after timm."""

    def __init__(self) -> None:
        self._searching = False

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "timm" or self._searching:
            return None
        self._searching = True  # let the other finders locate timm as usual
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._searching = False
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_timm = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            exec_timm(module)
            # only once timm has really been imported (a bare find_spec, e.g. an availability
            # check, leaves the hook in place)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            importlib.import_module(f"{__name__}.models")

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def __getattr__(name: str) -> Any:
    """``torchgeo_moemae.models`` on first use (importing it imports timm and torch)."""
    if name == "models":
        return importlib.import_module(f"{__name__}.models")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if "timm" in sys.modules:
    from . import models
elif not any(isinstance(finder, _RegisterWithTimm) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithTimm())
