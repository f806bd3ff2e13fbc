"""Small helpers shared by the package's modules."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "METADATA_KEYS",
    "batch_metadata",
    "default_device",
    "eval_mode",
    "file_sha256",
    "fixed_masking",
]

#: Batch keys of the metadata the encoder takes as keywords (degrees, degrees, POSIX seconds UTC).
METADATA_KEYS: tuple[str, str, str] = ("lat", "lon", "time")


def batch_metadata(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lat``/``lon``/``time`` entries a batch has, as keywords for the encoder."""
    return {k: batch[k] for k in METADATA_KEYS if k in batch}


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when present, else the CPU (every command's default)."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def fixed_masking(batch_idx: int = 0, seed: int = 0) -> torch.Generator:
    """The masking of held-out batch ``batch_idx``: a CPU generator seeded with ``seed + batch_idx``.

    Every held-out masked measure draws from it (the pre-training task's ``val_loss`` and
    ``test_loss``, :func:`~torchgeo_moemae.analysis.reconstruct`,
    :func:`~torchgeo_moemae.analysis.masked_reconstruction_loss`), so a batch hides the same
    patches in every epoch, run and model, whichever measure draws them.
    """
    return torch.Generator().manual_seed(seed + batch_idx)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 16 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()
