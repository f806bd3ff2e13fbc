"""Golden fixtures computed with the authors' code (see ``make_golden.py``) and what tests build
from them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .make_golden import reference_weights

GOLDEN = Path(__file__).resolve().parent


def authors_state_dict(size: str) -> dict[str, torch.Tensor]:
    """The authors'-layout state dict the fixtures were computed with (shared weights repeated)."""
    keys = json.loads((GOLDEN / f"{size}_keys.json").read_text())
    owners: dict[str, tuple[int, ...]] = {}
    for owner, shape in keys.values():
        owners.setdefault(owner, tuple(shape))
    values = reference_weights(list(owners.items()))
    return {key: values[owner] for key, (owner, _) in keys.items()}
