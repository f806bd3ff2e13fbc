"""Exceptions shared by the package and its command line (a leaf module: imports nothing heavy)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

__all__ = [
    "INPUT_ERRORS",
    "CheckpointError",
    "PretrainedWeightsError",
    "UntrainedWeightsWarning",
    "reported_in_one_line",
    "root_cause",
]


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


#: Errors in what the user gave (a missing or unreadable file, a bad value, weights of the wrong
#: size or that cannot be fetched): reported in one line, not as a traceback.
INPUT_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, PretrainedWeightsError)

#: the attribute that marks an error for :func:`reported_in_one_line`
_ONE_LINE = "_torchgeo_moemae_one_line"

_ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def _one_line_hook(previous: _ExceptHook) -> _ExceptHook:
    """``sys.excepthook`` printing a marked error (or one caused by it) as one line."""

    def excepthook(
        kind: type[BaseException], value: BaseException, traceback: TracebackType | None
    ) -> None:
        err: BaseException | None = value
        while err is not None and not getattr(err, _ONE_LINE, False):
            err = err.__cause__ or err.__context__
        if err is None:
            previous(kind, value, traceback)
        else:
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)

    setattr(excepthook, _ONE_LINE, True)
    return excepthook


@contextlib.contextmanager
def reported_in_one_line() -> Iterator[None]:
    """An input error (:data:`INPUT_ERRORS`) raised in the block, if nothing catches it, ends the
    program with one line ``<program>: error: <message>`` (exit code 1) instead of a traceback.

    For what ``torchgeo fit --config ...`` builds: jsonargparse wraps an error raised while it
    creates a task in a long traceback ending in "Does not validate against any of the Union
    subtypes", which buries a message that already says what to do. Code that catches the error
    (the Python API, IPython, pytest) gets it unchanged; other uncaught errors keep Python's
    traceback. ``sys.excepthook`` is wrapped on the first such error, not before.
    """
    try:
        yield
    except INPUT_ERRORS as err:
        setattr(err, _ONE_LINE, True)
        if not getattr(sys.excepthook, _ONE_LINE, False):
            sys.excepthook = _one_line_hook(sys.excepthook)
        raise
