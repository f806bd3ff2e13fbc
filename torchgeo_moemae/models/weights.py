"""TorchGeo-style pre-trained weights and model/weights lookup for this package.

Mirrors :mod:`torchgeo.models.api`: :func:`get_model`, :func:`get_model_weights`, :func:`get_weight`,
:func:`list_models`. Models are the timm-registered encoders; weights load through the same converter
as timm's ``pretrained=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torchvision.transforms.v2 as T
from timm.models._features import FeatureGetterNet
from torch import nn
from torchvision.models._api import Weights, WeightsEnum

from ..datasets.stats import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from .encoder import MoEMAEEncoder
from .registry import HF_HUB_FILENAME, HF_HUB_ID, load_checkpoint

__all__ = [
    "MoEMAELandsatXS_Weights",
    "MoEMAELandsatXXS_Weights",
    "MoEMAELandsat_Weights",
    "get_model",
    "get_model_weights",
    "get_weight",
    "list_models",
    "resolve_weights",
]

# Inputs are Landsat 8/9 C2 L2 surface-reflectance DN (SR_B1..SR_B7), 40x40 px, as float. As
# TorchGeo's own weights: torchvision v2 transforms, which take an image (C, H, W) or a batch
# (B, C, H, W), or a sample dict whose first tensor is the image (other keys pass unchanged).
_transforms = nn.Sequential(
    T.Normalize(mean=list(BIGEARTHNET_LS_MEAN), std=list(BIGEARTHNET_LS_STD))
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


def resolve_weights(weights: WeightsEnum | str | Path) -> dict[str, Any] | str | Path:
    """What to load for a ``weights`` argument, as TorchGeo's models and tasks accept it.

    Args:
        weights: a weights entry, its full name (``"MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS"``)
            or a local checkpoint path.

    Returns:
        The entry's state dict (downloaded via ``torch.hub``) or the path, unchanged.

    Raises:
        ValueError: a string that is neither an existing path nor a weights name.
    """
    if isinstance(weights, str) and not Path(weights).exists():
        try:
            weights = get_weight(weights)
        except ValueError:
            raise ValueError(
                f"weights {weights!r} is neither an existing checkpoint path nor a weights name "
                f"(one of {[str(w) for enum in _MODEL_WEIGHTS.values() for w in enum]})"
            ) from None
    if isinstance(weights, WeightsEnum):
        return weights.get_state_dict(progress=True)
    return weights


def get_model(
    name: str, weights: WeightsEnum | str | Path | None = None, **kwargs: Any
) -> MoEMAEEncoder | FeatureGetterNet:
    """Instantiate an encoder, optionally with weights.

    Args:
        name: one of :func:`list_models`.
        weights: a weights entry (downloaded via ``torch.hub``), its full name, or a local checkpoint
            path (the authors' ``.pth``, a ``.safetensors`` file or an exported folder).
        **kwargs: forwarded to :func:`timm.create_model` (e.g. ``num_classes``, ``global_pool``,
            ``features_only=True, out_indices=...``: then a timm ``FeatureGetterNet``).
    """
    get_model_weights(name)  # validates the name
    model = timm.create_model(name, **kwargs)
    # features_only wraps the (pruned) encoder: load into it, tolerating the pruned blocks.
    encoder = model.model if isinstance(model, FeatureGetterNet) else model
    assert isinstance(encoder, MoEMAEEncoder) and isinstance(
        model, MoEMAEEncoder | FeatureGetterNet
    )
    if weights is not None:
        strict = encoder is model and encoder.num_classes == 0
        load_checkpoint(encoder, resolve_weights(weights), strict=strict)
    return model
