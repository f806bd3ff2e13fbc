"""MoE-MAE models; importing this package registers the timm models ``moemae_landsat*``."""

from ._checks import skip_value_checks
from .encoder import EncoderOutput, MoEMAEEncoder
from .factory import (
    create_encoder,
    create_mae,
    export_architecture,
    get_model,
    load_checkpoint,
    read_checkpoint,
    timm_name,
)
from .mae import MAEOutput, MoEMAE, patchify, random_masking, unpatchify
from .metadata import METADATA_FIELDS, HourEncoding, encode_metadata, iso_week_and_utc_hour
from .moe import MoEAux, NoisyTopKGate, SwiGLUMoE
from .provenance import checkpoint_hour_encoding
from .registry import HF_HUB_ID, MODEL_SIZES, MODEL_VARIANTS
from .weights import (
    MoEMAELandsat_Weights,
    MoEMAELandsatXS_Weights,
    MoEMAELandsatXXS_Weights,
    get_model_weights,
    get_weight,
    list_models,
)

__all__ = [
    "HF_HUB_ID",
    "METADATA_FIELDS",
    "MODEL_SIZES",
    "MODEL_VARIANTS",
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
    "create_encoder",
    "create_mae",
    "encode_metadata",
    "export_architecture",
    "get_model",
    "get_model_weights",
    "get_weight",
    "iso_week_and_utc_hour",
    "list_models",
    "load_checkpoint",
    "patchify",
    "random_masking",
    "read_checkpoint",
    "skip_value_checks",
    "timm_name",
    "unpatchify",
]
