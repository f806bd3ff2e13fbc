"""Export a pre-trained MoE-MAE to a timm / Hugging Face Hub folder.

The folder holds ``model.safetensors`` (the encoder's timm state dict) and ``config.json`` (timm's
Hub layout: ``architecture``, ``pretrained_cfg``, ...), so::

    timm.create_model("moemae_landsat", pretrained=True, pretrained_cfg_overlay=dict(file="out"))

loads it (``file`` may also name ``out/model.safetensors``), and
``huggingface_hub.upload_folder(repo_id=..., folder_path="out")`` publishes it (then
``timm.create_model("hf-hub:<repo_id>")``). With ``save_mae`` the whole MAE (encoder and decoder) is
also written to ``mae.safetensors``, to continue pre-training from it
(``MoEMAEPretrainTask(weights="out/mae.safetensors")`` or ``create_mae(weights="out")``); timm
ignores that file. The authors' ``.pth`` converts the same way, keeping their tag, licence and
paper in ``config.json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import save_file
from timm.models import save_for_hf
from torch import nn

from .models import MoEMAE, Provenance, create_mae, load_weights
from .models.checkpoint import read_checkpoint, read_lightning_checkpoint
from .models.convert import is_upstream_state_dict, unwrap_checkpoint
from .models.factory import load_into
from .outputs import atomic_output, check_output, provenance_record
from .utils import file_sha256
from .vocabulary import EXPORT_FILES, MAE_FILENAME

__all__ = [
    "AUTHORS_FIELDS",
    "check_export_folder",
    "export_encoder",
    "load_pretrain_checkpoint",
    "save_export",
]

#: ``pretrained_cfg`` fields of the registered models that describe the authors' published weights
#: (their tag, licence, paper and code): kept only in an export of those weights, never in one of
#: weights trained here
AUTHORS_FIELDS = ("tag", "license", "paper_name", "paper_ids", "origin_url", "hf_hub_id", "url")


def check_export_folder(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Check, before any work, that ``out_dir`` can take an export (see
    :func:`~torchgeo_moemae.outputs.check_output`): a folder or a new name, writable, holding no
    export files unless ``overwrite`` (its other files are kept either way)."""
    return check_output(
        out_dir, folder=True, overwrite=overwrite, contents=EXPORT_FILES, what="export folder"
    )


@contextmanager
def _pretrained_cfg(model: nn.Module, cfg: dict[str, Any]) -> Iterator[None]:
    """``model.pretrained_cfg`` is ``cfg`` inside the block (what ``save_for_hf`` records)."""
    before = getattr(model, "pretrained_cfg", None)
    model.pretrained_cfg = cfg  # type: ignore[assignment]
    try:
        yield
    finally:
        model.pretrained_cfg = before  # type: ignore[assignment]


@torch.no_grad()
def save_export(
    model: nn.Module,
    out_dir: str | Path,
    source: Provenance,
    *,
    model_args: dict[str, Any] | None = None,
    mae: MoEMAE | None = None,
    authors_weights: bool = False,
    overwrite: bool = False,
    **trained_with: Any,
) -> Path:
    """Write a timm model as ``model.safetensors`` + ``config.json`` (+ ``mae.safetensors``).

    Every export goes through here (``moemae export``, :func:`export_encoder`,
    :meth:`~torchgeo_moemae.trainers.FineTuneTask.export`): the output policy of
    :func:`check_export_folder`, files replaced only once all are complete, and ``config.json``
    recording where the weights came from (``trained_with``).

    Args:
        model: a timm model (its ``pretrained_cfg`` and ``model_args`` go to ``config.json``).
        out_dir: the export folder (created; its other files are kept).
        source: the weights the model was trained from or converted from.
        model_args: the arguments that rebuild the model with ``timm.create_model``.
        mae: also write the full MAE's state dict to ``mae.safetensors``.
        authors_weights: the model holds the authors' published weights, unchanged: their tag,
            licence, paper and code (:data:`AUTHORS_FIELDS`) stay in ``config.json``; otherwise
            they are left out, since they would describe weights these are not.
        overwrite: replace an earlier export in ``out_dir``; without it an earlier export is kept
            and a ``FileExistsError`` raised before anything is written.
        **trained_with: more of what made the weights, recorded with their source (e.g. the
            samples' ``time_source`` of a fine-tuning).
    """
    out = check_export_folder(out_dir, overwrite)
    cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", None) or {})
    if not authors_weights:
        cfg = {k: v for k, v in cfg.items() if k not in AUTHORS_FIELDS}
    trained = provenance_record(source, cfg.get("architecture"), **trained_with)
    with atomic_output(out) as staging, _pretrained_cfg(model, cfg):
        save_for_hf(
            model,
            str(staging),
            safe_serialization=True,
            model_args=model_args or {},
            model_config={"trained_with": trained},
        )
        if mae is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in mae.state_dict().items()}
            metadata = {"architecture": str(cfg.get("architecture")), "format": "moemae"}
            save_file(state, staging / MAE_FILENAME, metadata=metadata)
    return out


def load_pretrain_checkpoint(path: str | Path) -> MoEMAE:
    """The MAE of a Lightning checkpoint of the pre-training task.

    The file is verified first
    (:func:`~torchgeo_moemae.models.checkpoint.read_lightning_checkpoint`: damaged, empty and
    foreign files are refused in one line) and read directly (tensors and plain hyper-parameters
    only), so exporting needs neither Lightning nor the task class.
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
    load_into(mae, state)
    return mae


def _is_authors_file(path: Path) -> bool:
    """``path`` is a torch file in the authors' layout (their ``.pth``), not a Lightning ``.ckpt``."""
    if path.suffix in (".ckpt", ".safetensors") or not path.is_file():
        return False
    return is_upstream_state_dict(unwrap_checkpoint(read_checkpoint(path)))


def _load_mae(source: Any) -> tuple[MoEMAE, Provenance, bool]:
    """The MAE, where its weights came from and whether they are the authors' own, from a
    Lightning checkpoint or the authors' ``.pth``, a task or an MAE."""
    if isinstance(source, str | Path):
        path = Path(source)
        if _is_authors_file(path):
            checkpoint = load_weights(path)
            return create_mae(None, checkpoint), checkpoint.provenance, True
        mae = load_pretrain_checkpoint(path)
        return mae, Provenance(str(path), sha256=file_sha256(path)), False
    # a MoEMAEPretrainTask (duck-typed: this module must not import the trainers)
    if isinstance(getattr(source, "model", None), MoEMAE) and hasattr(source, "hparams"):
        source = source.model
    if isinstance(source, MoEMAE):
        return source, Provenance(f"{type(source).__name__} in memory"), False
    raise TypeError(
        "expected a Lightning checkpoint or the authors' .pth path, a MoEMAEPretrainTask or a "
        f"MoEMAE, got {type(source).__name__}"
    )


@torch.no_grad()
def export_encoder(
    checkpoint: Any, out_dir: str | Path, save_mae: bool = True, overwrite: bool = False
) -> Path:
    """Export a pre-trained MoE-MAE's encoder (and the full MAE) for timm and the Hub.

    Args:
        checkpoint: a Lightning checkpoint of :class:`~torchgeo_moemae.trainers.MoEMAEPretrainTask`
            (``.ckpt``), the authors' ``.pth`` (converted; their tag, licence and paper are kept
            in ``config.json``), the task itself, or a :class:`~torchgeo_moemae.models.MoEMAE`
            built by :func:`~torchgeo_moemae.models.create_mae`.
        out_dir: output folder (created; its other files are kept).
        save_mae: also write the full MAE state dict to ``mae.safetensors``.
        overwrite: replace an earlier export in ``out_dir`` (only once every new file is
            complete); without it an earlier export is kept and a ``FileExistsError`` raised.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        CheckpointError: for a damaged, empty or foreign checkpoint file (one line).
        FileExistsError: if ``out_dir`` holds an export and not ``overwrite``.
    """
    check_export_folder(out_dir, overwrite)
    mae, source, authors = _load_mae(checkpoint)
    cfg = getattr(mae.encoder, "pretrained_cfg", None)
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    if not isinstance(arch, str):
        raise ValueError(
            "cannot tell the timm architecture of this MoEMAE: build it with "
            "create_mae('S'|'XS'|'XXS') or pass a MoEMAEPretrainTask/checkpoint"
        )
    # A fresh timm encoder carries the registered pretrained_cfg/model args that save_for_hf records;
    # copying the weights in keeps the export independent of how the trained encoder was built.
    # The hour rule is recorded in config.json's model_args so that a re-loaded export keeps it.
    model_args: dict[str, Any] = {"hour_encoding": mae.encoder.hour_encoding}
    encoder = timm.create_model(arch, **model_args)
    encoder.load_state_dict(mae.encoder.state_dict())
    return save_export(
        encoder,
        out_dir,
        source,
        model_args=model_args,
        mae=mae if save_mae else None,
        authors_weights=authors,
        overwrite=overwrite,
    )
