"""When to run Python-side input checks: in eager mode only, never in a traced or compiled graph."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

try:  # recent torch: is_fx_tracing (older name) logs a warning at its first call
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as _is_fx_tracing
except ImportError:  # pragma: no cover
    from torch.fx._symbolic_trace import is_fx_tracing as _is_fx_tracing

__all__ = ["cast", "eager_checks_enabled", "skip_value_checks", "value_checks_enabled"]

_VALUE_CHECKS: ContextVar[bool] = ContextVar("moemae_value_checks", default=True)


def eager_checks_enabled() -> bool:
    """True in plain eager execution; False under FX tracing or ``torch.compile``.

    Shape, dtype and value checks read tensor metadata or values on the host: FX cannot trace that
    control flow and ``torch.compile`` would break its graph (or, for value checks, synchronise).
    The checks therefore guard eager calls, where their messages help, and stay out of graphs.
    """
    return not (_is_fx_tracing() or torch.compiler.is_compiling())


def value_checks_enabled() -> bool:
    """True where the checks that read tensor VALUES on the host (NaN/inf pixels, metadata ranges)
    run: eager mode outside :func:`skip_value_checks`."""
    return _VALUE_CHECKS.get() and eager_checks_enabled()


@contextmanager
def skip_value_checks() -> Iterator[None]:
    """Inside, the encoder skips its value checks (shape and dtype checks still run).

    Each value check is a host synchronisation. A training loop that guards non-finite losses on
    the device itself (:class:`~torchgeo_moemae.trainers.MoEMAEPretrainTask`) runs its step in
    here so that the accelerator's queue never waits.
    """
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def cast(tensor: Tensor, dtype: torch.dtype, device: torch.device | None = None) -> Tensor:
    """``tensor.to(device, dtype)``, skipped where ``tensor`` already has them.

    A no-op ``.to`` still costs a dispatcher call per eager step; FX always records the conversion
    (a traced tensor's dtype is unknown), ``torch.compile`` removes it when it is a no-op.
    """
    device = tensor.device if device is None else device
    if _is_fx_tracing() or tensor.dtype != dtype or tensor.device != device:
        return tensor.to(device=device, dtype=dtype)
    return tensor
