"""Trustworthy checkpoint input: verified reads.

:func:`read_lightning_checkpoint` refuses, with a one-line :class:`CheckpointError`, a file that
``torch.load`` would read silently wrong or fail on obscurely: a damaged record (torch's zip
checkpoints store a CRC-32 per record, which ``torch.load`` never checks), an empty or truncated
file, and a checkpoint that is not a Lightning one (the authors' ``.pth``: it says how to load it).
Complete writes with ordinary permissions are :mod:`torchgeo_moemae.outputs`' job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .models.checkpoint import read_checkpoint
from .models.convert import is_upstream_state_dict, unwrap_checkpoint

__all__ = ["read_lightning_checkpoint"]


def read_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint after verifying it.

    Args:
        path: a ``.ckpt`` written by Lightning (``Trainer.save_checkpoint`` / ``ModelCheckpoint``).

    Returns:
        the checkpoint dict (``state_dict``, ``hyper_parameters``, ...), on the CPU.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        CheckpointError: (one line, naming ``path``) if the file is empty, not a torch zip
            checkpoint, damaged (a record fails its CRC-32), or not a Lightning checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Lightning checkpoint not found: {path}")
    checkpoint = read_checkpoint(path)
    if "pytorch-lightning_version" in checkpoint and "state_dict" in checkpoint:
        return checkpoint
    if is_upstream_state_dict(unwrap_checkpoint(checkpoint)):
        raise CheckpointError(
            f"{path}: the authors' MoE-MAE checkpoint, not a Lightning one; load it with "
            f"timm.create_model('moemae_landsat', pretrained=True, "
            f"pretrained_cfg_overlay=dict(file='{path}')) or torchgeo_moemae.models.create_mae('S', "
            f"'{path}')"
        )
    raise CheckpointError(
        f"{path}: not a Lightning checkpoint (no 'pytorch-lightning_version'/'state_dict'; keys: "
        f"{sorted(checkpoint)[:5]})"
    )
