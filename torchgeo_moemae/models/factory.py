"""Build any MoE-MAE model (encoder or full MAE) and load any supported checkpoint: the one place.

Models are named by size (``"S"``, ``"XS"``, ``"XXS"``), by timm name (``moemae_landsat*``, or any
other timm model for the encoder), or not at all when the weights say what they are (a folder written
by ``moemae export`` records its ``architecture`` in ``config.json``; a weights entry its ``model``).

Weights may be:

* a :class:`~torchvision.models.WeightsEnum` entry or its full name (downloaded once through
  :func:`huggingface_hub.hf_hub_download` into the Hugging Face cache; ``HF_HUB_OFFLINE`` is honoured);
* a folder written by ``moemae export`` (``model.safetensors`` + ``config.json`` [+ ``mae.safetensors``]);
* a ``.safetensors`` file or a torch checkpoint: the authors' ``.pth`` (training dict or state dict),
  this package's encoder or MAE state dict;
* a state dict.

Every layout goes through :func:`~torchgeo_moemae.models.convert.checkpoint_filter_fn`, the same
converter as ``timm.create_model(..., pretrained=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import timm
import torch
from huggingface_hub import hf_hub_download
from torch import nn
from torchvision.models._api import WeightsEnum

from .convert import checkpoint_filter_fn
from .encoder import MoEMAEEncoder
from .mae import MoEMAE
from .metadata import HourEncoding
from .provenance import checkpoint_hour_encoding
from .registry import (
    EXPORT_WEIGHTS_FILENAME,
    MODEL_VARIANTS,
    PretrainedWeightsError,
    how_to_load,
    hub_hint,
)
from .weights import get_model_weights, get_weight

__all__ = [
    "MAE_FILENAME",
    "Weights",
    "create_encoder",
    "create_mae",
    "download_weights",
    "export_architecture",
    "get_model",
    "load_checkpoint",
    "read_checkpoint",
    "timm_name",
]

#: Full-MAE weights file of a folder written by ``moemae export`` (timm ignores it).
MAE_FILENAME = "mae.safetensors"

#: Anything :func:`create_encoder` / :func:`create_mae` accept as weights.
Weights: TypeAlias = WeightsEnum | str | Path | Mapping[str, Any]

_SIZE_TO_NAME = {size: name for name, size in MODEL_VARIANTS.items()}


def timm_name(model: str, moemae_only: bool = False) -> str:
    """``"S"``/``"XS"``/``"XXS"`` (any case) or a timm name -> the timm name.

    Args:
        model: a size or a timm model name.
        moemae_only: refuse names other than ``moemae_landsat*``.

    Raises:
        ValueError: for another name when ``moemae_only``.
    """
    name = _SIZE_TO_NAME.get(model.upper(), model)
    if moemae_only and name.split(".")[0] not in MODEL_VARIANTS:
        raise ValueError(
            f"model must be one of {sorted(_SIZE_TO_NAME)} or {sorted(MODEL_VARIANTS)}, got {model!r}"
        )
    return name


def _is_moemae(name: str) -> bool:
    return name.split(".")[0] in MODEL_VARIANTS


def export_architecture(path: str | Path) -> str | None:
    """The timm ``architecture`` an export folder (or a weights file inside one) records, else None."""
    path = Path(path)
    if path.is_file():
        if path.name not in (EXPORT_WEIGHTS_FILENAME, MAE_FILENAME):
            return None
        path = path.parent
    config = path / "config.json"
    if not config.is_file():
        return None
    try:
        arch = json.loads(config.read_text()).get("architecture")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(
            f"{config} is not an export config (JSON with 'architecture'): {err}"
        ) from err
    if not isinstance(arch, str):
        raise ValueError(f"{config} has no 'architecture' string; re-export with `moemae export`")
    return arch


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``.safetensors`` file, a folder holding ``model.safetensors``, or a torch checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / EXPORT_WEIGHTS_FILENAME
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
    model: nn.Module, checkpoint: str | Path | Mapping[str, Any], strict: bool = True
) -> nn.Module:
    """Load any known checkpoint layout into a :class:`MoEMAEEncoder` or :class:`MoEMAE`.

    An encoder also loads from full-MAE checkpoints (the decoder is dropped).

    Raises:
        ValueError: naming the missing, unexpected and mis-shaped keys if the checkpoint does not match.
    """
    source = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)
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
        name = "state dict" if isinstance(checkpoint, Mapping) else checkpoint
        raise ValueError(
            f"checkpoint {name} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
            f"shape mismatches {shapes[:5]} (wrong model size?)"
        )
    model.load_state_dict(state_dict, strict=strict)
    return model


def download_weights(weights: WeightsEnum) -> Path:
    """The local file of a weights entry, downloaded once into the Hugging Face cache.

    Raises:
        PretrainedWeightsError: (a RuntimeError) when the file is neither cached nor downloadable
            (e.g. ``HF_HUB_OFFLINE=1``),
            with the same instructions as ``timm.create_model(..., pretrained=True)``.
    """
    repo, filename = weights.meta["hf_hub_id"], weights.meta["hf_hub_filename"]
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except OSError as err:  # offline without cache, network errors, missing entries
        name = weights.meta["model"]
        raise PretrainedWeightsError(
            f"Could not load pretrained weights for {name!r} from {repo}/{filename}: {err}. "
            f"{how_to_load(name)}{hub_hint()}."
        ) from err


def _resolve_weights(
    weights: Weights | None,
) -> tuple[str | None, Path | Mapping[str, Any] | None]:
    """``(architecture the weights record or None, local source)`` of any accepted weights."""
    if weights is None:
        return None, None
    if isinstance(weights, WeightsEnum):
        return str(weights.meta["model"]), download_weights(weights)
    if isinstance(weights, Mapping):
        return None, weights
    path = Path(weights)
    if path.exists():
        return export_architecture(path), path
    if isinstance(weights, str) and "_Weights." in weights:
        return _resolve_weights(get_weight(weights))
    raise FileNotFoundError(
        f"weights not found: {path} (expected an export folder, a .safetensors/.pth file or a "
        "weights name such as 'MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS')"
    )


def _hour_encoding(weights: Weights | None, source: Path | Mapping[str, Any]) -> HourEncoding:
    """The hour rule the weights were trained with: a weights entry says, a checkpoint shows it."""
    if isinstance(weights, WeightsEnum):
        return weights.meta["hour_encoding"]
    return checkpoint_hour_encoding(source)


def _pick_name(model: str | None, weights: Weights | None, arch: str | None) -> str:
    """The timm name to build: ``model``'s, else the weights' architecture, else the S model."""
    if model is None:
        return arch or "moemae_landsat"
    name = timm_name(model)
    if arch is not None and name.split(".")[0] != arch.split(".")[0]:
        raise ValueError(
            f"the weights {weights} hold a {arch} ({MODEL_VARIANTS.get(arch, '?')}) model, but model "
            f"{model!r} ({name}) was asked for; leave the model out to use the weights' architecture"
        )
    return name


def create_encoder(
    model: str | None = None, weights: Weights | None = None, **kwargs: Any
) -> nn.Module:
    """An encoder, optionally with weights (see the module docstring for what is accepted).

    Args:
        model: ``"S"``/``"XS"``/``"XXS"``, a ``moemae_landsat*`` name, or another timm model name
            (created with ``in_chans=7, num_classes=0``, e.g. ``resnet18``; its weights are a file
            timm reads). None: the weights' architecture, else ``moemae_landsat``.
        weights: None for a random initialisation.
        **kwargs: forwarded to :func:`timm.create_model` (e.g. ``num_classes``, ``global_pool``).

    Raises:
        ValueError: if ``model`` and the weights' recorded architecture disagree, or the weights do
            not fit the model (wrong size).
        FileNotFoundError: if the weights do not exist.
    """
    arch, source = _resolve_weights(weights)
    name = _pick_name(model, weights, arch)
    if _is_moemae(name):
        if source is not None:  # weights keep the hour rule they were trained with
            kwargs.setdefault("hour_encoding", _hour_encoding(weights, source))
        built = timm.create_model(name, **kwargs)
        # features_only wraps the (possibly pruned) encoder in timm's getter net, as ``.model``
        ours = built if isinstance(built, MoEMAEEncoder) else getattr(built, "model", None)
        assert isinstance(ours, MoEMAEEncoder)
        if source is not None:  # a classifier head or pruned blocks are not loaded strictly
            load_checkpoint(ours, source, strict=ours is built and ours.num_classes == 0)
        return built
    options: dict[str, Any] = {"in_chans": 7, "num_classes": 0, **kwargs}
    if isinstance(source, Mapping):
        encoder = timm.create_model(name, **options)
        encoder.load_state_dict(dict(source))
        return encoder
    if source is not None:
        options.update(pretrained=True, pretrained_cfg_overlay={"file": str(source)})
    return timm.create_model(name, **options)


def create_mae(
    model: str | None = None,
    weights: Weights | None = None,
    allow_encoder_weights: bool = False,
    hour_encoding: HourEncoding | None = None,
    **kwargs: Any,
) -> MoEMAE:
    """The full MoE-MAE (encoder + decoder), optionally from weights.

    The encoder is built by :func:`timm.create_model`, so it carries timm's ``pretrained_cfg``.

    Args:
        model: ``"S"``/``"XS"``/``"XXS"`` or a ``moemae_landsat*`` name; None: the weights'
            architecture, else S.
        weights: full-MAE weights (the authors' ``.pth``, ``mae.safetensors``, an export folder's
            ``mae.safetensors`` ...); None for a random initialisation.
        allow_encoder_weights: accept encoder-only weights too (the decoder then starts from scratch).
        hour_encoding: the encoder's hour rule; None: the one the weights were trained with
            (:func:`~torchgeo_moemae.models.checkpoint_hour_encoding`), ``"utc"`` without weights.
        **kwargs: forwarded to :class:`MoEMAE` (``mask_ratio``, decoder settings).
    """
    arch, source = _resolve_weights(weights)
    name = timm_name(_pick_name(model, weights, arch), moemae_only=True)
    if isinstance(source, Path) and source.is_dir() and (source / MAE_FILENAME).is_file():
        source = source / MAE_FILENAME
    if hour_encoding is None:
        hour_encoding = "utc" if source is None else _hour_encoding(weights, source)
    encoder = timm.create_model(name, hour_encoding=hour_encoding)
    assert isinstance(encoder, MoEMAEEncoder)
    mae = MoEMAE(encoder, **kwargs)
    if source is None:
        return mae
    try:
        load_checkpoint(mae, source)
    except ValueError as mae_error:
        if not allow_encoder_weights:
            raise
        try:
            load_checkpoint(mae.encoder, source)
        except ValueError:
            raise mae_error from None
    return mae


def get_model(name: str, weights: Weights | None = None, **kwargs: Any) -> nn.Module:
    """Instantiate an encoder by its timm name, optionally with weights (torchgeo's ``get_model``).

    Args:
        name: one of :func:`~torchgeo_moemae.models.list_models`.
        weights: a weights entry or its full name (Hugging Face cache, ``HF_HUB_OFFLINE`` honoured),
            or a local checkpoint (the authors' ``.pth``, a ``.safetensors`` file, an export folder).
        **kwargs: forwarded to :func:`timm.create_model` (e.g. ``num_classes``, ``global_pool``,
            ``features_only=True, out_indices=...``: then timm's feature wrapper around the encoder).

    Returns:
        a :class:`MoEMAEEncoder`, or timm's ``FeatureGetterNet`` with ``features_only=True``.
    """
    get_model_weights(name)  # validates the name
    return create_encoder(name, weights, **kwargs)
