"""Build the encoder to probe: ours (with optional weights) or any timm model with 7 input bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from torch import nn

from ..models import MoEMAE, MoEMAEEncoder, load_checkpoint
from ..models.provenance import checkpoint_hour_encoding
from ..models.registry import MODEL_VARIANTS

__all__ = ["build_encoder"]

_SIZES = {"S": "moemae_landsat", "XS": "moemae_landsat_xs", "XXS": "moemae_landsat_xxs"}


def build_encoder(model: str = "moemae_landsat", weights: str | Path | None = None) -> nn.Module:
    """An encoder without classifier.

    Args:
        model: ``"S"``/``"XS"``/``"XXS"``, a ``moemae_landsat*`` timm name, or another timm model
            name (created with ``in_chans=7, num_classes=0``, e.g. ``resnet18``,
            ``vit_small_patch16_224``).
        weights: for our encoders: an exported folder, ``model.safetensors``, ``mae.safetensors`` or
            the authors' ``.pth`` (encoder or full-MAE layouts); for timm models: a state dict file.
            None: random initialisation. Our encoders keep the hour rule the weights were trained
            with (:func:`~torchgeo_moemae.models.checkpoint_hour_encoding`).
    """
    name = _SIZES.get(model.upper(), model)
    if name.split(".")[0] in MODEL_VARIANTS:
        hour_encoding = "utc" if weights is None else checkpoint_hour_encoding(weights)
        encoder = timm.create_model(name, hour_encoding=hour_encoding)
        assert isinstance(encoder, MoEMAEEncoder)
        if weights is not None:
            try:
                load_checkpoint(encoder, weights)
            except ValueError as enc_error:
                mae = MoEMAE(encoder)
                try:
                    load_checkpoint(mae, weights)
                except ValueError:
                    raise enc_error from None
        return encoder
    kwargs: dict[str, Any] = {"in_chans": 7, "num_classes": 0}
    if weights is not None:
        kwargs["pretrained"] = True
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    return timm.create_model(name, **kwargs)
