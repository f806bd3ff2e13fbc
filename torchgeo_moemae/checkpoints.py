"""Trustworthy checkpoint input and output: verified reads, complete writes, ordinary permissions.

* :func:`read_lightning_checkpoint` refuses, with a one-line :class:`CheckpointError`, a file that
  ``torch.load`` would read silently wrong or fail on obscurely: a damaged record (torch's zip
  checkpoints store a CRC-32 per record, which ``torch.load`` never checks), an empty or truncated
  file, and a checkpoint that is not a Lightning one (the authors' ``.pth``: it says how to load it).
* :func:`atomic_output` writes files into a hidden temporary folder and moves each into place with
  :func:`os.replace` only once all are complete, so a failed write never leaves a partial file
  under a final name; the files get the permissions the umask gives (``tempfile`` and safetensors
  create 0600 files).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .models.checkpoint import read_checkpoint
from .models.convert import is_upstream_state_dict, unwrap_checkpoint

__all__ = ["atomic_output", "read_lightning_checkpoint"]


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


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(out_dir: str | Path) -> Iterator[Path]:
    """A temporary folder whose files replace those of ``out_dir`` only if the block succeeds.

    Files are moved one by one with :func:`os.replace` (atomic per file) after the whole block has
    run, with permissions ``0o666 & ~umask``; on error the temporary folder is removed and
    ``out_dir`` keeps its previous files.

    Args:
        out_dir: the final folder (created if missing).

    Yields:
        the temporary folder (inside ``out_dir``, so the moves never cross file systems).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        yield staging
        mode = 0o666 & ~_umask()
        for item in sorted(staging.iterdir()):
            item.chmod(mode)
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
