"""Small helpers shared by the package's modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode (deterministic routing, no dropout) inside the block, then
    restore its previous train/eval mode, also on error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
