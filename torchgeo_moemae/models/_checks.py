"""When to run Python-side input checks: in eager mode only, never in a traced or compiled graph."""

from __future__ import annotations

import torch

try:  # recent torch: is_fx_tracing (older name) logs a warning at its first call
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as _is_fx_tracing
except ImportError:  # pragma: no cover
    from torch.fx._symbolic_trace import is_fx_tracing as _is_fx_tracing

__all__ = ["eager_checks_enabled"]


def eager_checks_enabled() -> bool:
    """True in plain eager execution; False under FX tracing or ``torch.compile``.

    Shape, dtype and value checks read tensor metadata or values on the host: FX cannot trace that
    control flow and ``torch.compile`` would break its graph (or, for value checks, synchronise).
    The checks therefore guard eager calls, where their messages help, and stay out of graphs.
    """
    return not (_is_fx_tracing() or torch.compiler.is_compiling())
