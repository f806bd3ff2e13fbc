"""Build any MoE-MAE model (encoder or full MAE), optionally with any supported weights.

Models are named by size (``"S"``, ``"XS"``, ``"XXS"``), by timm name (``moemae_landsat*``, or any
other timm model for the encoder), or not at all when the weights say what they are (a folder written
by ``moemae export`` records its ``architecture`` in ``config.json``; a weights entry its ``model``).

Weights may be:

* a :class:`~torchvision.models.WeightsEnum` entry or its full name (read once through
  :func:`huggingface_hub.hf_hub_download` into the Hugging Face cache; ``HF_HUB_OFFLINE`` is honoured);
* a folder written by ``moemae export`` (``model.safetensors`` + ``config.json`` [+ ``mae.safetensors``]);
* a ``.safetensors`` file or a torch checkpoint: the authors' ``.pth`` (training dict or state dict),
  this package's encoder or MAE state dict;
* a state dict.

Weights are read once by :func:`~torchgeo_moemae.models.load_weights` (which also accepts its own
:class:`~torchgeo_moemae.models.Checkpoint`, so a caller that records the weights' provenance reads
them only once), and every layout goes through
:func:`~torchgeo_moemae.models.convert.checkpoint_filter_fn`, the same converter as
``timm.create_model(..., pretrained=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from torch import nn

from ..vocabulary import MAE_FILENAME
from .checkpoint import RANDOM_INIT, Checkpoint, Provenance, Weights, recorded_model_args
from .convert import checkpoint_filter_fn
from .encoder import MoEMAEEncoder
from .mae import MoEMAE
from .metadata import HourEncoding
from .registry import MODEL_VARIANTS
from .weights import get_model_weights, load_weights

__all__ = [
    "create_encoder",
    "create_mae",
    "export_architecture",
    "get_model",
    "load_into",
    "load_model",
    "mae_weights",
    "timm_name",
]

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
    return recorded_model_args(path).get("architecture")


def load_into(model: nn.Module, weights: Weights, strict: bool = True) -> nn.Module:
    """Load weights of any known layout into a :class:`MoEMAEEncoder` or :class:`MoEMAE`.

    An encoder also loads from full-MAE weights (the decoder is dropped).

    Raises:
        ValueError: starting with where the weights came from: a layout that cannot be converted,
            or the missing, unexpected and mis-shaped keys if the weights do not match.
    """
    checkpoint = load_weights(weights)
    try:
        state_dict = checkpoint_filter_fn(checkpoint.state_dict, model)
    except KeyError as err:
        raise ValueError(
            f"{checkpoint.provenance}: incomplete weights, key {err} is missing (a damaged or "
            "partial checkpoint?)"
        ) from err
    except ValueError as err:
        raise ValueError(f"{checkpoint.provenance}: {err}") from err
    own = model.state_dict()
    shapes = [
        f"{k}: {tuple(v.shape)} != {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if shapes or (strict and (missing or unexpected)):
        raise ValueError(
            f"{checkpoint.provenance}: the weights do not match {type(model).__name__}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
            f"shape mismatches {shapes[:5]} (wrong model size?)"
        )
    model.load_state_dict(state_dict, strict=strict)
    return model


def _pick_name(model: str | None, checkpoint: Checkpoint | None) -> str:
    """The timm name to build: ``model``'s, else the weights' architecture, else the S model."""
    arch = checkpoint.architecture if checkpoint else None
    if model is None:
        return arch or "moemae_landsat"
    name = timm_name(model)
    if arch is not None and name.split(".")[0] != arch.split(".")[0]:
        raise ValueError(
            f"the weights {checkpoint and checkpoint.provenance} hold a {arch} ({MODEL_VARIANTS.get(arch, '?')}) model, but model "
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
    checkpoint = None if weights is None else load_weights(weights)
    name = _pick_name(model, checkpoint)
    if _is_moemae(name):
        if checkpoint is not None:  # weights keep the hour rule they were trained with
            kwargs.setdefault("hour_encoding", checkpoint.hour_encoding)
        built = timm.create_model(name, **kwargs)
        # features_only wraps the (possibly pruned) encoder in timm's getter net, as ``.model``
        ours = built if isinstance(built, MoEMAEEncoder) else getattr(built, "model", None)
        assert isinstance(ours, MoEMAEEncoder)
        if checkpoint is not None:  # a classifier head or pruned blocks are not loaded strictly
            strict = ours is built and ours.num_classes == 0
            load_into(ours, checkpoint, strict=strict)
        return built
    options: dict[str, Any] = {"in_chans": 7, "num_classes": 0, **kwargs}
    if checkpoint is not None:  # timm adapts the stem and head of its own models
        overlay = {"state_dict": dict(checkpoint.state_dict)}
        options.update(pretrained=True, pretrained_cfg_overlay=overlay)
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
            (:attr:`~torchgeo_moemae.models.Checkpoint.hour_encoding`), ``"utc"`` without weights.
        **kwargs: forwarded to :class:`MoEMAE` (``mask_ratio``, decoder settings).
    """
    checkpoint = None if weights is None else load_weights(mae_weights(weights))
    name = timm_name(_pick_name(model, checkpoint), True)
    if hour_encoding is None:
        hour_encoding = "utc" if checkpoint is None else checkpoint.hour_encoding
    encoder = timm.create_model(name, hour_encoding=hour_encoding)
    assert isinstance(encoder, MoEMAEEncoder)
    mae = MoEMAE(encoder, **kwargs)
    if checkpoint is None:
        return mae
    try:
        load_into(mae, checkpoint)
    except ValueError as mae_error:
        if not allow_encoder_weights:
            raise
        try:
            load_into(mae.encoder, checkpoint)
        except ValueError:
            raise mae_error from None
    return mae


def load_model(
    model: str | None = None, weights: Weights | None = None, mae: bool = False
) -> tuple[nn.Module, Provenance]:
    """An encoder (the full MAE with ``mae``) and where its weights came from, for the record.

    What the commands and the scene task build: :func:`create_encoder` (or :func:`create_mae`)
    with ``weights`` read once, and their :class:`~torchgeo_moemae.models.Provenance`
    (:data:`~torchgeo_moemae.models.checkpoint.RANDOM_INIT` for ``weights=None``).
    """
    build = create_mae if mae else create_encoder
    if weights is None:
        return build(model), RANDOM_INIT
    checkpoint = load_weights(mae_weights(weights) if mae else weights)
    return build(model, checkpoint), checkpoint.provenance


def mae_weights(weights: Weights) -> Weights:
    """The full-MAE weights of ``weights``: an export folder's ``mae.safetensors``, else as given."""
    if isinstance(weights, str | Path) and (Path(weights) / MAE_FILENAME).is_file():
        return Path(weights) / MAE_FILENAME
    return weights


def get_model(name: str, weights: Weights | None = None, **kwargs: Any) -> nn.Module:
    """Instantiate an encoder by its timm name, optionally with weights (torchgeo's ``get_model``).

    Args:
        name: one of :func:`~torchgeo_moemae.models.list_models`.
        weights: a weights entry or its full name (read from its ``url``: a Hub URL through the
            Hugging Face cache, ``HF_HUB_OFFLINE`` honoured; another URL, e.g. a mirror, through
            torchvision's ``load_state_dict_from_url``), or a local checkpoint (the authors'
            ``.pth``, a ``.safetensors`` file, an export folder), or a read
            :class:`~torchgeo_moemae.models.checkpoint.Checkpoint`.
        **kwargs: forwarded to :func:`timm.create_model` (e.g. ``num_classes``, ``global_pool``,
            ``features_only=True, out_indices=...``: then timm's feature wrapper around the encoder).

    Returns:
        a :class:`MoEMAEEncoder`, or timm's ``FeatureGetterNet`` with ``features_only=True``.
    """
    get_model_weights(name)  # validates the name
    return create_encoder(name, weights, **kwargs)
