"""TorchGeo-style pre-trained weights entries, their lookup, and :func:`load_weights`.

Mirrors :mod:`torchgeo.models.api`: :func:`get_model_weights`, :func:`get_weight`, :func:`list_models`
(:func:`~torchgeo_moemae.models.get_model` lives in :mod:`torchgeo_moemae.models.factory`).
:func:`load_weights` reads any weights the package accepts, an entry's name included, once.

An entry's :meth:`~MoEMAEWeightsEnum.get_state_dict` reads its ``url`` once
(:meth:`~torchgeo_moemae.models.Checkpoint.from_entry`) and returns the state dict of the timm
encoder, so TorchGeo's tasks load it as they load their own entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torchvision.models._api import Weights as Entry
from torchvision.models._api import WeightsEnum

from ..bands import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from ..transforms import Normalize
from ..vocabulary import weights_kind
from .checkpoint import HF_HUB_FILENAME, HF_HUB_ID, Checkpoint, Weights
from .convert import checkpoint_filter_fn
from .encoder import MoEMAEEncoder
from .registry import MODEL_SIZES, MODEL_VARIANTS

__all__ = [
    "MoEMAELandsatXS_Weights",
    "MoEMAELandsatXXS_Weights",
    "MoEMAELandsat_Weights",
    "MoEMAEWeightsEnum",
    "get_model_weights",
    "get_weight",
    "list_models",
    "load_weights",
]


# Inputs are Landsat 8/9 C2 L2 surface-reflectance DN (SR_B1..SR_B7), 40x40 px.
_transforms = Normalize(BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD)


class MoEMAEWeightsEnum(WeightsEnum):
    """Weights entries of the MoE-MAE encoders: ``get_state_dict`` gives the timm encoder's keys."""

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The encoder state dict of the entry's weights (read from its ``url``).

        Loads into ``timm.create_model(self.meta["model"])``, e.g. in TorchGeo's
        ``ClassificationTask(model="moemae_landsat", weights=<entry>, in_channels=7)``. The
        arguments (torchvision's ``progress`` ...) are accepted and unused.
        """
        checkpoint = Checkpoint.from_entry(self)
        with torch.device("meta"):  # only the layout is needed to convert the keys
            template = MoEMAEEncoder(**MODEL_SIZES[MODEL_VARIANTS[self.meta["model"]]])
        return checkpoint_filter_fn(checkpoint.state_dict, template)


class MoEMAELandsat_Weights(MoEMAEWeightsEnum):
    """Pre-trained weights of the MoE-MAE encoder S (``moemae_landsat``)."""

    LANDSAT_OLI_SR_MOEMAE_BEN_LS = Entry(
        url=f"https://hf.co/{HF_HUB_ID}/resolve/main/{HF_HUB_FILENAME}",
        transforms=_transforms,
        meta={
            "dataset": "BigEarthNet-L (Landsat-Bench)",
            "in_chans": len(BANDS),
            "img_size": 40,
            "model": "moemae_landsat",
            "publication": "https://arxiv.org/abs/2509.10919",
            "repo": "https://github.com/AlbughdadiM/geo-moe-mae",
            "hf_hub_id": HF_HUB_ID,
            "hf_hub_filename": HF_HUB_FILENAME,
            "ssl_method": "moe-mae",
            "bands": BANDS,
            # the authors' loader kept the first digit of the hour (docs/user_guide/fidelity.rst)
            "hour_encoding": "authors",
        },
    )


class MoEMAELandsatXS_Weights(MoEMAEWeightsEnum):
    """Weights of the XS encoder (none published yet)."""


class MoEMAELandsatXXS_Weights(MoEMAEWeightsEnum):
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


def load_weights(weights: Weights) -> Checkpoint:
    """Read any accepted weights once, with where they came from.

    Args:
        weights: a :class:`~torchgeo_moemae.models.Checkpoint` (returned as is), a weights entry or
            its full name (``"MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS"``), a folder
            written by ``moemae export``, a ``.safetensors`` file, a torch checkpoint (the authors'
            ``.pth``, their state dict, this package's encoder or MAE state dict), or a state dict.

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: for a weights name that is not one of this package's entries (a TorchGeo
            entry included: those are not MoE-MAE weights).
        PretrainedWeightsError: if a weights entry can be neither found in the cache nor downloaded.
        CheckpointError: for an empty, damaged or unreadable file.
    """
    if isinstance(weights, Checkpoint):
        return weights
    if isinstance(weights, WeightsEnum):
        return Checkpoint.from_entry(weights)
    if isinstance(weights, Mapping):
        return Checkpoint.from_state_dict(weights)
    if isinstance(weights, str) and _kind(weights) == "entry":
        return Checkpoint.from_entry(get_weight(weights))
    return Checkpoint.from_path(weights)


def _kind(weights: str) -> str:
    """What a weights string names; a TorchGeo entry is refused (not MoE-MAE weights)."""
    try:
        kind = weights_kind(weights)
    except ValueError:
        return "path"  # reported as a missing file
    if kind == "torchgeo":
        raise ValueError(
            f"{weights} is a TorchGeo weights entry, not MoE-MAE weights: build it with "
            "torchgeo.models.get_model, or compare it with `moemae evaluate --encoder`"
        )
    return kind
