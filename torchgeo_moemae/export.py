"""Export a pre-trained MoE-MAE to a timm / Hugging Face Hub folder.

The folder holds ``model.safetensors`` (the encoder's timm state dict) and ``config.json`` (timm's
Hub layout: ``architecture``, ``pretrained_cfg``, ...), so::

    timm.create_model("moemae_landsat", pretrained=True, pretrained_cfg_overlay=dict(file="out"))

loads it (``file`` may also name ``out/model.safetensors``), and
``huggingface_hub.upload_folder(repo_id=..., folder_path="out")`` publishes it (then
``timm.create_model("hf-hub:<repo_id>")``). With ``save_mae`` the whole MAE (encoder and decoder) is
also written to ``mae.safetensors``, to continue pre-training from it
(``MoEMAEPretrainTask(weights="out/mae.safetensors")`` or ``create_mae(weights="out")``); timm
ignores that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import save_file
from timm.models import save_for_hf

from .checkpoints import read_lightning_checkpoint
from .models import MoEMAE, Provenance, create_mae, load_checkpoint
from .models.checkpoint import EXPORT_WEIGHTS_FILENAME, MAE_FILENAME
from .outputs import atomic_output, check_output, provenance_record
from .utils import file_sha256

__all__ = [
    "EXPORT_FILES",
    "MAE_FILENAME",
    "check_export_folder",
    "export_encoder",
    "load_pretrain_checkpoint",
]

#: the files an export writes (timm's Hub layout, then the full MAE)
EXPORT_FILES = (EXPORT_WEIGHTS_FILENAME, "config.json", MAE_FILENAME)


#: ``pretrained_cfg`` fields of the registered models that describe the authors' published weights
#: (their tag, licence, paper and code), not weights trained here: left out of an export
AUTHORS_FIELDS = ("tag", "license", "paper_name", "paper_ids", "origin_url", "hf_hub_id", "url")


def check_export_folder(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Check, before any work, that ``out_dir`` can take an export (see
    :func:`~torchgeo_moemae.outputs.check_output`): a folder or a new name, writable, holding no
    export files unless ``overwrite`` (its other files are kept either way)."""
    return check_output(
        out_dir, folder=True, overwrite=overwrite, contents=EXPORT_FILES, what="export folder"
    )


def load_pretrain_checkpoint(path: str | Path) -> MoEMAE:
    """The MAE of a Lightning checkpoint of the pre-training task.

    The file is verified first (:func:`~torchgeo_moemae.checkpoints.read_lightning_checkpoint`:
    damaged, empty and foreign files are refused in one line) and read directly (tensors and plain
    hyper-parameters only), so exporting needs neither Lightning nor the task class.
    """
    checkpoint = read_lightning_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "model" not in hparams:
        raise ValueError(
            f"{path} is not a Lightning checkpoint of MoEMAEPretrainTask (no hyper_parameters.model)"
        )
    mae = create_mae(hparams["model"], mask_ratio=hparams.get("mask_ratio", 0.75))
    state = {
        k.removeprefix("model."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("model.")
    }
    load_checkpoint(mae, state)
    return mae


def _load_mae(source: Any) -> tuple[MoEMAE, str]:
    """The MAE and its timm architecture from a Lightning checkpoint, a task or an MAE."""
    if isinstance(source, str | Path):
        source = load_pretrain_checkpoint(source)
    # a MoEMAEPretrainTask (duck-typed: this module must not import the trainers)
    if isinstance(getattr(source, "model", None), MoEMAE) and hasattr(source, "hparams"):
        source = source.model
    if isinstance(source, MoEMAE):
        cfg = getattr(source.encoder, "pretrained_cfg", None)
        name = cfg.get("architecture") if isinstance(cfg, dict) else None
        if not isinstance(name, str):
            raise ValueError(
                "cannot tell the timm architecture of this MoEMAE: build it with "
                "create_mae('S'|'XS'|'XXS') or pass a MoEMAEPretrainTask/checkpoint"
            )
        return source, name
    raise TypeError(
        f"expected a Lightning checkpoint path, MoEMAEPretrainTask or MoEMAE, got {type(source).__name__}"
    )


@torch.no_grad()
def export_encoder(
    checkpoint: Any, out_dir: str | Path, save_mae: bool = True, overwrite: bool = False
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (+ ``mae.safetensors``) for timm and the Hub.

    Args:
        checkpoint: a Lightning checkpoint of :class:`~torchgeo_moemae.trainers.MoEMAEPretrainTask`
            (``.ckpt``), the task itself, or a :class:`~torchgeo_moemae.models.MoEMAE` built by
            :func:`~torchgeo_moemae.models.create_mae`.
        out_dir: output folder (created; its other files are kept).
        save_mae: also write the full MAE state dict to ``mae.safetensors``.
        overwrite: replace an earlier export in ``out_dir`` (only once every new file is
            complete); without it an earlier export is kept and a ``FileExistsError`` raised.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        CheckpointError: for a damaged, empty or non-Lightning checkpoint file (one line).
        FileExistsError: if ``out_dir`` holds an export and not ``overwrite``.
    """
    out = check_export_folder(out_dir, overwrite)
    mae, arch = _load_mae(checkpoint)
    # A fresh timm encoder carries the registered pretrained_cfg/model args that save_for_hf records;
    # copying the weights in keeps the export independent of how the trained encoder was built.
    # The hour rule is recorded in config.json's model_args so that a re-loaded export keeps it.
    hour_args: dict[str, Any] = {"hour_encoding": mae.encoder.hour_encoding}
    encoder = timm.create_model(arch, **hour_args)
    encoder.load_state_dict(mae.encoder.state_dict())
    # config.json describes these weights: what they were trained from, not the authors' release
    cfg: dict[str, Any] = dict(encoder.pretrained_cfg)  # type: ignore[arg-type]
    encoder.pretrained_cfg = {k: v for k, v in cfg.items() if k not in AUTHORS_FIELDS}  # type: ignore[assignment]
    source = Provenance(f"{type(checkpoint).__name__} in memory")
    if isinstance(checkpoint, str | Path):
        source = Provenance(str(checkpoint), sha256=file_sha256(checkpoint))
    trained = provenance_record(source, arch)
    with atomic_output(out) as staging:
        save_for_hf(
            encoder,
            str(staging),
            safe_serialization=True,
            model_args=hour_args,
            model_config={"trained_with": trained},
        )
        if save_mae:
            state = {k: v.detach().cpu().contiguous() for k, v in mae.state_dict().items()}
            save_file(
                state, staging / MAE_FILENAME, metadata={"architecture": arch, "format": "moemae"}
            )
    return out
