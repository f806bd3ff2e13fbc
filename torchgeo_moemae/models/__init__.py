"""MoE-MAE models; importing this package registers the timm models ``moemae_landsat*``."""

from ._checks import skip_value_checks
from .checkpoint import (
    HF_HUB_ID,
    RANDOM_INIT,
    Checkpoint,
    Provenance,
    checkpoint_hour_encoding,
    load_weights,
)
from .encoder import EncoderOutput, MoEMAEEncoder
from .factory import (
    create_encoder,
    create_mae,
    export_architecture,
    get_model,
    load_checkpoint,
    read_checkpoint,
    read_weights,
    timm_name,
)
from .mae import MAEOutput, MoEMAE, patchify, random_masking, unpatchify
from .metadata import METADATA_FIELDS, HourEncoding, encode_metadata, iso_week_and_utc_hour
from .moe import MoEAux, NoisyTopKGate, SwiGLUMoE
from .registry import MODEL_SIZES, MODEL_VARIANTS
from .weights import (
    MoEMAELandsat_Weights,
    MoEMAELandsatXS_Weights,
    MoEMAELandsatXXS_Weights,
    MoEMAEWeightsEnum,
    get_model_weights,
    get_weight,
    list_models,
)

__all__ = [
    "HF_HUB_ID",
    "METADATA_FIELDS",
    "MODEL_SIZES",
    "MODEL_VARIANTS",
    "RANDOM_INIT",
    "Checkpoint",
    "EncoderOutput",
    "HourEncoding",
    "MAEOutput",
    "MoEAux",
    "MoEMAE",
    "MoEMAEEncoder",
    "MoEMAELandsatXS_Weights",
    "MoEMAELandsatXXS_Weights",
    "MoEMAELandsat_Weights",
    "MoEMAEWeightsEnum",
    "NoisyTopKGate",
    "Provenance",
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
    "load_weights",
    "patchify",
    "random_masking",
    "read_checkpoint",
    "read_weights",
    "skip_value_checks",
    "timm_name",
    "unpatchify",
]
