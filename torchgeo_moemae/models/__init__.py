"""MoE-MAE models; importing this package registers the timm models ``moemae_landsat*``."""

from .encoder import EncoderOutput, MoEMAEEncoder
from .mae import MAEOutput, MoEMAE, patchify, random_masking, unpatchify
from .metadata import METADATA_FIELDS, HourEncoding, encode_metadata, iso_week_and_utc_hour
from .moe import MoEAux, NoisyTopKGate, SwiGLUMoE
from .provenance import checkpoint_hour_encoding
from .registry import HF_HUB_ID, MODEL_SIZES, create_mae, load_checkpoint, read_checkpoint
from .weights import (
    MoEMAELandsat_Weights,
    MoEMAELandsatXS_Weights,
    MoEMAELandsatXXS_Weights,
    get_model,
    get_model_weights,
    get_weight,
    list_models,
)

__all__ = [
    "HF_HUB_ID",
    "METADATA_FIELDS",
    "MODEL_SIZES",
    "EncoderOutput",
    "HourEncoding",
    "MAEOutput",
    "MoEAux",
    "MoEMAE",
    "MoEMAEEncoder",
    "MoEMAELandsatXS_Weights",
    "MoEMAELandsatXXS_Weights",
    "MoEMAELandsat_Weights",
    "NoisyTopKGate",
    "SwiGLUMoE",
    "checkpoint_hour_encoding",
    "create_mae",
    "encode_metadata",
    "get_model",
    "get_model_weights",
    "get_weight",
    "iso_week_and_utc_hour",
    "list_models",
    "load_checkpoint",
    "patchify",
    "random_masking",
    "read_checkpoint",
    "unpatchify",
]
