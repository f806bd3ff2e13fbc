"""Small helpers shared by the package's modules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from torch import nn

__all__ = ["METADATA_KEYS", "batch_metadata", "eval_mode"]

#: Batch keys of the metadata the encoder takes as keywords (degrees, degrees, POSIX seconds UTC).
METADATA_KEYS: tuple[str, str, str] = ("lat", "lon", "time")


def batch_metadata(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lat``/``lon``/``time`` entries a batch has, as keywords for the encoder."""
    return {k: batch[k] for k in METADATA_KEYS if k in batch}


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
