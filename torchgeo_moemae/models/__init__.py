"""MoE-MAE models; importing this package registers the timm models ``moemae_landsat*``.

The public names follow TorchGeo's ``torchgeo.models``: the model classes, their weights entries,
the builders, the weights API (:func:`get_model`, :func:`get_weight`, :func:`get_model_weights`,
:func:`list_models`), plus :func:`create_encoder` / :func:`create_mae` (a model from a size or
weights of any kind) and :func:`load_weights` (weights read once, with their provenance).
Everything else lives in the submodule that defines it (e.g.
:func:`torchgeo_moemae.models.metadata.encode_metadata`).
"""

from .checkpoint import Checkpoint, Provenance
from .encoder import MoEMAEEncoder
from .factory import create_encoder, create_mae, get_model
from .mae import MoEMAE
from .moe import NoisyTopKGate, SwiGLUMoE
from .registry import moemae_landsat, moemae_landsat_xs, moemae_landsat_xxs
from .weights import (
    MoEMAELandsat_Weights,
    MoEMAELandsatXS_Weights,
    MoEMAELandsatXXS_Weights,
    MoEMAEWeightsEnum,
    get_model_weights,
    get_weight,
    list_models,
    load_weights,
)

__all__ = [
    "Checkpoint",
    "MoEMAE",
    "MoEMAEEncoder",
    "MoEMAELandsatXS_Weights",
    "MoEMAELandsatXXS_Weights",
    "MoEMAELandsat_Weights",
    "MoEMAEWeightsEnum",
    "NoisyTopKGate",
    "Provenance",
    "SwiGLUMoE",
    "create_encoder",
    "create_mae",
    "get_model",
    "get_model_weights",
    "get_weight",
    "list_models",
    "load_weights",
    "moemae_landsat",
    "moemae_landsat_xs",
    "moemae_landsat_xxs",
]
