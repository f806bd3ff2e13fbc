"""What a checkpoint's weights were trained with, where the weights alone do not say."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .convert import is_upstream_state_dict, unwrap_checkpoint
from .metadata import HourEncoding, check_hour_encoding

__all__ = ["checkpoint_hour_encoding"]


def _recorded_hour_encoding(folder: Path) -> HourEncoding | None:
    """``model_args.hour_encoding`` of a folder written by ``moemae export``, if recorded."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text()).get("model_args", {}).get("hour_encoding")
    return None if value is None else check_hour_encoding(value)


def checkpoint_hour_encoding(checkpoint: str | Path | Mapping[str, Any]) -> HourEncoding:
    """The hour rule the weights of a checkpoint were trained with.

    ``"authors"`` for the authors' layout (their ``.pth`` or state dict: their loader kept the
    first digit of the hour), the ``hour_encoding`` recorded in the ``config.json`` of a folder
    written by ``moemae export`` (for the folder or a file in it), else ``"utc"`` (trained here).

    Args:
        checkpoint: a state dict, a checkpoint file or an exported folder.
    """
    if not isinstance(checkpoint, Mapping):
        path = Path(checkpoint)
        recorded = _recorded_hour_encoding(path if path.is_dir() else path.parent)
        if recorded is not None:
            return recorded
        if path.suffix == ".safetensors" or path.is_dir():
            return "utc"  # only this package writes safetensors of these models
        from .factory import read_checkpoint  # the factory imports this module (via registry)

        checkpoint = read_checkpoint(path)
    return "authors" if is_upstream_state_dict(unwrap_checkpoint(checkpoint)) else "utc"
