"""Export a pre-trained MoE-MAE to a timm / Hugging Face Hub folder.

The folder holds ``model.safetensors`` (the encoder's timm state dict) and ``config.json`` (timm's
Hub layout: ``architecture``, ``pretrained_cfg``, ...), so::

    timm.create_model("moemae_landsat", pretrained=True,
                      pretrained_cfg_overlay=dict(file="out/model.safetensors"))

loads it, and ``huggingface_hub.upload_folder(repo_id=..., folder_path="out")`` publishes it
(then ``timm.create_model("hf-hub:<repo_id>")``). With ``save_mae`` the whole MAE (encoder and
decoder) is also written to ``mae.safetensors``, to continue pre-training from it
(``MoEMAEPretrainTask(weights="out/mae.safetensors")`` or ``create_mae(size, "out/mae.safetensors")``);
timm ignores that file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import timm
import torch
from safetensors.torch import save_file
from timm.models import save_for_hf

from .checkpoints import CheckpointError, atomic_output, read_lightning_checkpoint
from .models import MoEMAE

if TYPE_CHECKING:
    from .trainers import MoEMAEPretrainTask

__all__ = ["configure_parser", "export_encoder", "run"]

MAE_FILENAME = "mae.safetensors"


def _load_mae(source: str | Path | MoEMAE | MoEMAEPretrainTask) -> tuple[MoEMAE, str]:
    """The MAE and its timm architecture name from a Lightning checkpoint, a task or an MAE."""
    from .trainers.pretrain import MoEMAEPretrainTask, timm_model_name

    if isinstance(source, str | Path):
        read_lightning_checkpoint(source)  # refuses damaged, empty and non-Lightning files
        source = MoEMAEPretrainTask.load_from_checkpoint(source, map_location="cpu")
    if isinstance(source, MoEMAEPretrainTask):
        return source.model, timm_model_name(source.hparams["model"])
    if isinstance(source, MoEMAE):
        cfg = getattr(source.encoder, "pretrained_cfg", None)
        name = cfg.get("architecture") if isinstance(cfg, dict) else None
        if not isinstance(name, str):
            raise ValueError(
                "cannot tell the timm architecture of this MoEMAE: build its encoder with "
                "timm.create_model('moemae_landsat*') or pass a MoEMAEPretrainTask/checkpoint"
            )
        return source, name
    raise TypeError(
        f"expected a Lightning checkpoint path, MoEMAEPretrainTask or MoEMAE, got {type(source).__name__}"
    )


def export_encoder(
    checkpoint: str | Path | MoEMAE | MoEMAEPretrainTask,
    out_dir: str | Path,
    save_mae: bool = True,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (+ ``mae.safetensors``) for timm and the Hub.

    Args:
        checkpoint: a Lightning checkpoint of :class:`~torchgeo_moemae.trainers.MoEMAEPretrainTask`
            (``.ckpt``), the task itself, or a :class:`~torchgeo_moemae.models.MoEMAE` whose encoder
            was built by ``timm.create_model``.
        out_dir: output folder (created; existing files of the same names are replaced, only
            once every new file is complete).
        save_mae: also write the full MAE state dict to ``mae.safetensors``.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        CheckpointError: for a damaged, empty or non-Lightning checkpoint file (one line).
    """
    mae, arch = _load_mae(checkpoint)
    out = Path(out_dir)
    # A fresh timm encoder carries the registered pretrained_cfg/model args that save_for_hf records;
    # copying the weights in keeps the export independent of how the trained encoder was built.
    # The hour rule is recorded in config.json's model_args so that a re-loaded export keeps it.
    hour_args: dict[str, Any] = {"hour_encoding": mae.encoder.hour_encoding}
    encoder = timm.create_model(arch, **hour_args)
    encoder.load_state_dict(mae.encoder.state_dict())
    with atomic_output(out) as staging:
        save_for_hf(encoder, str(staging), safe_serialization=True, model_args=hour_args)
        if save_mae:
            state = {k: v.detach().cpu().contiguous() for k, v in mae.state_dict().items()}
            save_file(
                state, staging / MAE_FILENAME, metadata={"architecture": arch, "format": "moemae"}
            )
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae export``."""
    parser.add_argument(
        "checkpoint", type=Path, help="Lightning checkpoint (.ckpt) of the pre-training task"
    )
    parser.add_argument("out_dir", type=Path, help="output folder (model.safetensors, config.json)")
    parser.add_argument(
        "--no-mae",
        dest="save_mae",
        action="store_false",
        help=f"do not write the full encoder+decoder weights ({MAE_FILENAME})",
    )


def run(args: argparse.Namespace) -> int:
    """``moemae export CHECKPOINT OUT_DIR``: print the written folder and how to load it."""
    try:
        with torch.no_grad():
            out = export_encoder(args.checkpoint, args.out_dir, save_mae=args.save_mae)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"moemae export: error: {err}", file=sys.stderr)
        return 2  # argparse's code for a user error
    arch = timm_name_of(out)
    print(f"exported {args.checkpoint} -> {out}")
    for name in sorted(p.name for p in out.iterdir()):
        print(f"  {out / name}")
    print(
        f'load: timm.create_model("{arch}", pretrained=True, '
        f'pretrained_cfg_overlay=dict(file="{out / "model.safetensors"}"))'
    )
    print(f'publish: huggingface_hub.upload_folder(repo_id="<user>/<repo>", folder_path="{out}")')
    return 0


def timm_name_of(out_dir: str | Path) -> str:
    """The ``architecture`` recorded in an exported folder's ``config.json``."""
    import json

    return str(json.loads((Path(out_dir) / "config.json").read_text())["architecture"])
