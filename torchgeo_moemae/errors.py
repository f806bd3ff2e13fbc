"""Exceptions shared by the package and its command line (a leaf module: imports nothing heavy)."""

from __future__ import annotations

__all__ = ["CheckpointError", "PretrainedWeightsError"]


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights cannot be found or read; the message says how to load them instead."""


class CheckpointError(ValueError):
    """A checkpoint file is damaged, empty or of the wrong kind; the message is one line."""
