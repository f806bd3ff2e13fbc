"""TorchGeo-style pre-trained weights and model/weights lookup for this package.

Mirrors :mod:`torchgeo.models.api`: :func:`get_model`, :func:`get_model_weights`, :func:`get_weight`,
:func:`list_models`. Models are the timm-registered encoders; weights load through the same converter
as timm's ``pretrained=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import timm
import torch
from torchvision.models._api import Weights, WeightsEnum

from ..datasets.stats import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from .encoder import MoEMAEEncoder
from .provenance import checkpoint_hour_encoding
from .registry import (
    HF_HUB_FILENAME,
    HF_HUB_ID,
    PRETRAINED_MODEL_ARGS,
    load_checkpoint,
)

__all__ = [
    "MoEMAELandsatXS_Weights",
    "MoEMAELandsatXXS_Weights",
    "MoEMAELandsat_Weights",
    "get_model",
    "get_model_weights",
    "get_weight",
    "list_models",
]

# Inputs are Landsat 8/9 C2 L2 surface-reflectance DN (SR_B1..SR_B7), 40x40 px.
_transforms = K.Normalize(
    mean=torch.tensor(BIGEARTHNET_LS_MEAN), std=torch.tensor(BIGEARTHNET_LS_STD)
)


class MoEMAELandsat_Weights(WeightsEnum):
    """Pre-trained weights of the MoE-MAE encoder S (``moemae_landsat``)."""

    LANDSAT_OLI_SR_MOEMAE_BEN_LS = Weights(
        url=f"https://hf.co/{HF_HUB_ID}/resolve/main/{HF_HUB_FILENAME}",
        transforms=_transforms,
        meta={
            "dataset": "BigEarthNet-L (Landsat-Bench)",
            "in_chans": len(BANDS),
            "img_size": 40,
            "model": "moemae_landsat",
            "publication": "Lightweight Metadata-Aware Mixture-of-Experts Masked Autoencoder for Earth Observation",
            "repo": "https://github.com/AlbughdadiM/geo-moe-mae",
            "hf_hub_id": HF_HUB_ID,
            "ssl_method": "moe-mae",
            "bands": BANDS,
            # the hour rule these weights were trained with (see MoEMAEEncoder.hour_encoding)
            "hour_encoding": PRETRAINED_MODEL_ARGS["moemae_landsat.ben_ls"]["hour_encoding"],
        },
    )


class MoEMAELandsatXS_Weights(WeightsEnum):
    """Weights of the XS encoder (none published yet)."""


class MoEMAELandsatXXS_Weights(WeightsEnum):
    """Weights of the XXS encoder (none published yet)."""


_MODEL_WEIGHTS: dict[str, type[WeightsEnum]] = {
    "moemae_landsat": MoEMAELandsat_Weights,
    "moemae_landsat_xs": MoEMAELandsatXS_Weights,
    "moemae_landsat_xxs": MoEMAELandsatXXS_Weights,
}


def list_models() -> list[str]:
    """Names of the models this package provides (also registered in timm)."""
    return list(_MODEL_WEIGHTS)


def get_model_weights(name: str | Callable[..., Any]) -> type[WeightsEnum]:
    """The weights enum of a model, by name or timm builder function."""
    key = name if isinstance(name, str) else name.__name__
    if key not in _MODEL_WEIGHTS:
        raise ValueError(f"unknown model {key!r}; available: {list_models()}")
    return _MODEL_WEIGHTS[key]


def get_weight(name: str) -> WeightsEnum:
    """A weights entry by its full name, e.g. ``"MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS"``."""
    for enum in _MODEL_WEIGHTS.values():
        for weight in enum:
            if name == str(weight):
                return weight
    raise ValueError(f"{name!r} is not a valid weights name of torchgeo_moemae")


def get_model(
    name: str, weights: WeightsEnum | str | Path | None = None, **kwargs: Any
) -> MoEMAEEncoder:
    """Instantiate an encoder, optionally with weights.

    Args:
        name: one of :func:`list_models`.
        weights: a weights entry (downloaded via ``torch.hub``), its full name, or a local checkpoint
            path (the authors' ``.pth``, a ``.safetensors`` file or an exported folder).
        **kwargs: forwarded to :func:`timm.create_model` (e.g. ``num_classes``, ``global_pool``).
            ``hour_encoding`` defaults to the one the weights were trained with (``"authors"`` for
            the authors' weights, see :func:`~torchgeo_moemae.models.checkpoint_hour_encoding`).
    """
    get_model_weights(name)  # validates the name
    if isinstance(weights, str) and not Path(weights).exists():
        weights = get_weight(weights)
    # Weights keep the hour rule they were trained with unless kwargs say otherwise.
    if isinstance(weights, WeightsEnum):
        kwargs.setdefault("hour_encoding", weights.meta["hour_encoding"])
    elif weights is not None:
        kwargs.setdefault("hour_encoding", checkpoint_hour_encoding(weights))
    model = timm.create_model(name, **kwargs)
    assert isinstance(model, MoEMAEEncoder)
    if isinstance(weights, WeightsEnum):
        state_dict = weights.get_state_dict(progress=True)
        load_checkpoint(model, state_dict, strict=model.num_classes == 0)
    elif weights is not None:
        load_checkpoint(model, weights, strict=model.num_classes == 0)
    return model
