"""Exceptions shared by the package and its command line (a leaf module: imports nothing heavy)."""

from __future__ import annotations

__all__ = ["CheckpointError", "PretrainedWeightsError", "UntrainedWeightsWarning", "root_cause"]


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights cannot be found or read; the message says how to load them instead."""


class CheckpointError(ValueError):
    """A checkpoint file is damaged, empty or of the wrong kind; the message is one line."""


class UntrainedWeightsWarning(UserWarning):
    """A checkpoint records no training (its weights are as initialised); the message names it."""


def root_cause(err: BaseException) -> str:
    """The message of the first exception in ``err``'s ``__cause__`` chain.

    GDAL errors surface through rasterio as "Read failed. See previous exception for details.";
    the first exception of the chain says what was wrong (e.g. the bytes a truncated strip lacks).
    """
    while err.__cause__ is not None:
        err = err.__cause__
    return " ".join(str(err).split()) or type(err).__name__
