"""timm registration of the MoE-MAE encoders: sizes, pretrained cfgs, the ``moemae_landsat*`` names.

Building models and loading checkpoints for users lives in :mod:`torchgeo_moemae.models.factory`;
this module only holds what timm's registry needs (and the one size <-> name map).
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
from .convert import checkpoint_filter_fn
from .encoder import MoEMAEEncoder
from .provenance import checkpoint_hour_encoding

__all__ = [
    "EXPORT_WEIGHTS_FILENAME",
    "HF_HUB_FILENAME",
    "HF_HUB_ID",
    "MODEL_SIZES",
    "MODEL_VARIANTS",
    "PretrainedWeightsError",
    "how_to_load",
    "hub_hint",
]

#: The authors' Hugging Face model repository.
HF_HUB_ID = "albughdadim/lightweight-metadata-aware-mixture-of-experts-mae-landsat"
#: Name of the authors' S checkpoint (timm also tries the ``.safetensors`` alternative first).
HF_HUB_FILENAME = "pretrained_S_best.pth"
#: Encoder weights file of a folder written by ``moemae export`` (timm's Hub layout).
EXPORT_WEIGHTS_FILENAME = "model.safetensors"

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
#: timm model name -> size: the package's one size <-> name map.
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

#: Constructor arguments the published weights of a pretrained cfg were trained with (timm's
#: PretrainedCfg has no field for them); explicit ``create_model`` kwargs override them.
PRETRAINED_MODEL_ARGS: dict[str, dict[str, Any]] = {
    # The authors' loader kept the first digit of the hour (SPEC 6); their weights expect it.
    "moemae_landsat.ben_ls": {"hour_encoding": "authors"},
}


def how_to_load(name: str) -> str:
    """The instructions every "could not load pretrained weights" error ends with."""
    return (
        f"Pass a local file: timm.create_model({name!r}, pretrained=True, "
        "pretrained_cfg_overlay=dict(file='/path/to/pretrained_S_best.pth, model.safetensors or "
        "an export folder')) (the authors' .pth training checkpoint, their state dict, or a folder "
        "written by `moemae export`)"
    )


def hub_hint() -> str:
    """How to get the authors' weights when the Hub cannot be reached."""
    return (
        " or allow the download (unset HF_HUB_OFFLINE) / pre-fill the cache with "
        f"`hf download {HF_HUB_ID}`"
    )


def _pretrained_location(cfg: dict[str, Any]) -> tuple[str, str]:
    """Where timm reads the weights of ``cfg`` from: ``(kind, location)``, ``("", "")`` if none.

    The same order as timm's builder: an explicit source, then a state dict, a file, the Hub, a URL.
    """
    source = cfg.get("source") or ""
    if source == "hf-hub":
        return source, str(cfg.get("hf_hub_id"))
    if source == "local-dir":
        return source, str(cfg.get("file"))
    for kind, key in (("state_dict", "state_dict"), ("file", "file"), ("hf-hub", "hf_hub_id")):
        if cfg.get(key):
            return kind, "state dict" if kind == "state_dict" else str(cfg[key])
    return ("url", str(cfg["url"])) if cfg.get("url") else ("", "")


def _trained_with(cfg: dict[str, Any], load_from: str, location: str) -> dict[str, Any]:
    """Constructor arguments the weights were trained with (explicit kwargs override them)."""
    if load_from in ("file", "local-dir"):
        # A local file may be the authors' or one trained here: its content tells which.
        return {"hour_encoding": checkpoint_hour_encoding(location)}
    return PRETRAINED_MODEL_ARGS.get(f"{cfg['architecture']}.{cfg['tag']}", {})


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
    load_from, location = _pretrained_location(cfg)
    if not load_from:
        raise PretrainedWeightsError(
            f"No published weights exist for {variant!r}. {how_to_load(name)}."
        )
    if load_from == "file" and Path(location).is_dir():
        # a folder written by `moemae export`: its encoder weights file
        overlay["file"] = str(Path(location) / EXPORT_WEIGHTS_FILENAME)
        model_args["pretrained_cfg_overlay"] = overlay
    try:
        model_args = {**_trained_with(cfg, load_from, location), **model_args}
        return build_model_with_cfg(
            MoEMAEEncoder,
            variant,
            True,
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=feature_cfg,
            **model_args,
        )
    except (OSError, EntryNotFoundError) as err:
        hint = hub_hint() if load_from == "hf-hub" else ""
        raise PretrainedWeightsError(
            f"Could not load pretrained weights for {variant!r} from {location}: {err}. "
            f"{how_to_load(name)}{hint}."
        ) from err


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
