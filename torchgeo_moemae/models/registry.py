"""timm registration of the MoE-MAE encoders: sizes, pretrained cfgs, the ``moemae_landsat*`` names.

Building models and loading checkpoints for users lives in :mod:`torchgeo_moemae.models.factory`;
this module only holds what timm's registry needs (and the size <-> name map).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub.errors import EntryNotFoundError
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    register_model,
    resolve_pretrained_cfg,
)

from ..bands import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from ..errors import PretrainedWeightsError
from ..vocabulary import EXPORT_WEIGHTS_FILENAME
from .checkpoint import (
    HF_HUB_FILENAME,
    HF_HUB_ID,
    how_to_load,
    hub_hint,
    recorded_model_args,
    state_dict_hour_encoding,
    warn_if_untrained,
)
from .convert import checkpoint_filter_fn
from .encoder import MoEMAEEncoder
from .metadata import HourEncoding

__all__ = ["MODEL_SIZES", "MODEL_VARIANTS"]

#: Encoder hyper-parameters of the authors' sizes.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "S": dict(
        embed_dim=144, depth=15, hidden_first=144, hidden_last=72, num_heads=8, num_kv_groups=4
    ),
    "XS": dict(
        embed_dim=128, depth=12, hidden_first=96, hidden_last=32, num_heads=8, num_kv_groups=4
    ),
    "XXS": dict(
        embed_dim=108, depth=9, hidden_first=81, hidden_last=27, num_heads=6, num_kv_groups=3
    ),
}
#: timm model name -> size.
MODEL_VARIANTS = {"moemae_landsat": "S", "moemae_landsat_xs": "XS", "moemae_landsat_xxs": "XXS"}


def _cfg(**kwargs: Any) -> dict[str, Any]:
    # ``first_conv`` lets timm adapt the 7-band patch embedding to another ``in_chans``; timm reads
    # the source band count from ``input_size`` since 1.0.31 (older releases assumed 3 bands).
    # mean/std are in Landsat C2 L2 DN.
    return {
        "num_classes": 0,
        "input_size": (len(BANDS), 40, 40),
        "fixed_input_size": True,
        "first_conv": "patch_embed.proj",
        "mean": BIGEARTHNET_LS_MEAN,
        "std": BIGEARTHNET_LS_STD,
        "classifier": "head",
        "license": "mit",
        "paper_name": "Lightweight Metadata-Aware Mixture-of-Experts Masked Autoencoder for Earth Observation",
        "origin_url": "https://github.com/AlbughdadiM/geo-moe-mae",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "moemae_landsat.ben_ls": _cfg(hf_hub_id=HF_HUB_ID, hf_hub_filename=HF_HUB_FILENAME),
        "moemae_landsat_xs.untrained": _cfg(),
        "moemae_landsat_xxs.untrained": _cfg(),
    }
)


class _HourRuleOfLoadedWeights:
    """timm ``pretrained_filter_fn`` that converts the weights timm read from ``source``, names
    them if they record no training, and notes the hour rule they were trained with, for the
    loader to set once the model is built."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.hour_encoding: HourEncoding | None = None

    def __call__(self, state_dict: dict[str, Any], model: MoEMAEEncoder) -> dict[str, Any]:
        # timm keeps the authors' training dict whole (its epoch and best loss included)
        warn_if_untrained(state_dict, self.source)
        self.hour_encoding = state_dict_hour_encoding(state_dict)
        return checkpoint_filter_fn(state_dict, model)


def _create_encoder(variant: str, pretrained: bool = False, **kwargs: Any) -> MoEMAEEncoder:
    name = variant.split(".")[0]
    # features_only: timm's getter wrapper over forward_intermediates, as for its ViTs.
    feature_cfg = dict(out_indices=kwargs.pop("out_indices", 3), feature_cls="getter")
    model_args = {**MODEL_SIZES[MODEL_VARIANTS[name]], **kwargs}
    if not pretrained:
        return build_model_with_cfg(
            MoEMAEEncoder, variant, False, feature_cfg=feature_cfg, **model_args
        )
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    cfg = resolve_pretrained_cfg(
        variant, pretrained_cfg=kwargs.get("pretrained_cfg"), pretrained_cfg_overlay=overlay
    ).to_dict()
    if not any(cfg.get(key) for key in ("state_dict", "file", "hf_hub_id", "url")):
        raise PretrainedWeightsError(
            f"No published weights exist for {variant!r}. {how_to_load(name)}."
        )
    location = overlay.get("file") or cfg.get("hf_hub_id") or cfg.get("url") or "a state dict"
    if overlay.get("file"):
        if not Path(overlay["file"]).exists():  # timm raises a FileNotFoundError without text
            raise PretrainedWeightsError(
                f"pretrained_cfg_overlay file not found: {overlay['file']} (expected the authors' "
                ".pth, a .safetensors file or a folder written by `moemae export`)"
            )
        # a folder written by `moemae export` (or a file in it): the model args it records
        recorded = recorded_model_args(overlay["file"])
        recorded.pop("architecture", None)
        model_args = {**recorded, **model_args}
        if Path(overlay["file"]).is_dir():
            overlay["file"] = str(Path(overlay["file"]) / EXPORT_WEIGHTS_FILENAME)
            model_args["pretrained_cfg_overlay"] = overlay
    # timm resolves and reads the weights; the filter converts them and notes their hour rule
    load_filter = _HourRuleOfLoadedWeights(str(location))
    try:
        model = build_model_with_cfg(
            MoEMAEEncoder,
            variant,
            True,
            pretrained_filter_fn=load_filter,
            feature_cfg=feature_cfg,
            **model_args,
        )
    except (OSError, EntryNotFoundError) as err:
        hint = hub_hint() if not overlay.get("file") else ""
        raise PretrainedWeightsError(
            f"Could not load pretrained weights for {variant!r} from {location}: {err}. "
            f"{how_to_load(name)}{hint}."
        ) from err
    # the weights keep the hour rule they were trained with, unless the caller chose one
    if "hour_encoding" not in model_args and load_filter.hour_encoding is not None:
        encoder: Any = model if isinstance(model, MoEMAEEncoder) else model.model
        encoder.hour_encoding = load_filter.hour_encoding
    return model


@register_model
def moemae_landsat(pretrained: bool = False, **kwargs: Any) -> MoEMAEEncoder:
    """MoE-MAE encoder S (2.37M parameters), 7 Landsat bands at 40x40 px, BigEarthNet-L pre-training."""
    return _create_encoder("moemae_landsat", pretrained, **kwargs)


@register_model
def moemae_landsat_xs(pretrained: bool = False, **kwargs: Any) -> MoEMAEEncoder:
    """MoE-MAE encoder XS (1.21M parameters); no published weights."""
    return _create_encoder("moemae_landsat_xs", pretrained, **kwargs)


@register_model
def moemae_landsat_xxs(pretrained: bool = False, **kwargs: Any) -> MoEMAEEncoder:
    """MoE-MAE encoder XXS (0.66M parameters); no published weights."""
    return _create_encoder("moemae_landsat_xxs", pretrained, **kwargs)
