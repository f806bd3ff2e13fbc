"""Exceptions shared by the package and its command line (a leaf module: imports nothing heavy)."""

from __future__ import annotations

__all__ = ["PretrainedWeightsError"]


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights cannot be found or read; the message says how to load them instead."""
