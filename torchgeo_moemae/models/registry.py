"""timm registration of the MoE-MAE encoders and checkpoint loading helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import EntryNotFoundError
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    register_model,
    resolve_pretrained_cfg,
)
from timm.models._builder import _resolve_pretrained_source
from torch import nn

from ..datasets.stats import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from .convert import checkpoint_filter_fn
from .encoder import MoEMAEEncoder
from .mae import MoEMAE
from .metadata import HourEncoding
from .provenance import checkpoint_hour_encoding

__all__ = [
    "HF_HUB_FILENAME",
    "HF_HUB_ID",
    "MODEL_SIZES",
    "create_mae",
    "load_checkpoint",
    "read_checkpoint",
]

#: The authors' Hugging Face model repository.
HF_HUB_ID = "albughdadim/lightweight-metadata-aware-mixture-of-experts-mae-landsat"
#: Name of the authors' S checkpoint (timm also tries the ``.safetensors`` alternative first).
HF_HUB_FILENAME = "pretrained_S_best.pth"

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
    # ``first_conv`` is left unset on purpose: timm <= 1.0.30 would otherwise drop the 7-band patch
    # embedding when in_chans != 3 ("Unable to convert"). mean/std are in Landsat C2 L2 DN.
    return {
        "num_classes": 0,
        "input_size": (len(BANDS), 40, 40),
        "fixed_input_size": True,
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


def _pretrained_source(variant: str, kwargs: dict[str, Any]) -> tuple[str, Any, str]:
    """Where the weights load from, and the name of their pretrained cfg."""
    cfg = resolve_pretrained_cfg(
        variant,
        pretrained_cfg=kwargs.get("pretrained_cfg"),
        pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"),
    )
    return (*_resolve_pretrained_source(cfg.to_dict()), f"{cfg.architecture}.{cfg.tag}")


def _trained_with(cfg_name: str, load_from: str, location: Any) -> dict[str, Any]:
    """Constructor arguments the weights were trained with (explicit kwargs override them)."""
    if load_from in ("file", "local-dir", "state_dict"):
        # A local file may be the authors' or one trained here: its content tells which.
        return {"hour_encoding": checkpoint_hour_encoding(location)}
    return PRETRAINED_MODEL_ARGS.get(cfg_name, {})


def _create_encoder(variant: str, pretrained: bool = False, **kwargs: Any) -> MoEMAEEncoder:
    model_args = {**MODEL_SIZES[MODEL_VARIANTS[variant.split(".")[0]]], **kwargs}
    if not pretrained:
        return build_model_with_cfg(MoEMAEEncoder, variant, False, **model_args)
    load_from, location, cfg_name = _pretrained_source(variant, kwargs)
    how = (
        f"Pass a local file: timm.create_model({variant.split('.')[0]!r}, pretrained=True, "
        "pretrained_cfg_overlay=dict(file='/path/to/pretrained_S_best.pth or model.safetensors')) "
        "(the authors' .pth training checkpoint, their state dict, or a folder exported by `moemae export`)"
    )
    if not load_from:
        raise RuntimeError(f"No published weights exist for {variant!r}. {how}.")
    try:
        model_args = {**_trained_with(cfg_name, load_from, location), **model_args}
        return build_model_with_cfg(
            MoEMAEEncoder, variant, True, pretrained_filter_fn=checkpoint_filter_fn, **model_args
        )
    except (OSError, EntryNotFoundError) as err:
        hint = (
            " or allow the download (unset HF_HUB_OFFLINE) / pre-fill the cache with "
            f"`hf download {HF_HUB_ID}`"
            if load_from == "hf-hub"
            else ""
        )
        raise RuntimeError(
            f"Could not load pretrained weights for {variant!r} from {location}: {err}. {how}{hint}."
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


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``.safetensors`` file, a folder holding ``model.safetensors``, or a torch checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/unsafe pickles
        raise ValueError(f"could not read checkpoint {path}: {err}") from err


def load_checkpoint(
    model: nn.Module, checkpoint: str | Path | dict[str, Any], strict: bool = True
) -> nn.Module:
    """Load any known checkpoint layout into a :class:`MoEMAEEncoder` or :class:`MoEMAE`.

    Raises:
        ValueError: naming the missing, unexpected and mis-shaped keys if the checkpoint does not match.
    """
    source = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    state_dict = checkpoint_filter_fn(source, model)
    own = model.state_dict()
    shapes = [
        f"{k}: {tuple(v.shape)} != {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if shapes or (strict and (missing or unexpected)):
        name = checkpoint if not isinstance(checkpoint, dict) else "state dict"
        raise ValueError(
            f"checkpoint {name} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
            f"shape mismatches {shapes[:5]} (wrong model size?)"
        )
    model.load_state_dict(state_dict, strict=strict)
    return model


def create_mae(
    size: str = "S",
    checkpoint: str | Path | dict[str, Any] | None = None,
    hour_encoding: HourEncoding | None = None,
    **kwargs: Any,
) -> MoEMAE:
    """Build the full MoE-MAE (encoder + decoder) of a size, optionally from a checkpoint.

    Args:
        size: ``"S"``, ``"XS"`` or ``"XXS"``.
        checkpoint: path or state dict (the authors' ``.pth`` or one of ours) holding decoder weights too.
        hour_encoding: the encoder's hour rule; None: the one the checkpoint was trained with
            (:func:`checkpoint_hour_encoding`), ``"utc"`` without a checkpoint.
        **kwargs: forwarded to :class:`MoEMAE` (``mask_ratio``, decoder settings).
    """
    if size not in MODEL_SIZES:
        raise ValueError(f"size must be one of {sorted(MODEL_SIZES)}, got {size!r}")
    if hour_encoding is None:
        hour_encoding = "utc" if checkpoint is None else checkpoint_hour_encoding(checkpoint)
    model = MoEMAE(MoEMAEEncoder(**MODEL_SIZES[size], hour_encoding=hour_encoding), **kwargs)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model
