"""``moemae export CHECKPOINT --out DIR``: a checkpoint -> a timm / Hugging Face Hub folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..vocabulary import EXPORT_FILES
from .common import add_overwrite_argument, check_input


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae export``."""
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="Lightning checkpoint (.ckpt) of the pre-training task, or the authors' .pth",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help=f"output folder ({', '.join(EXPORT_FILES)})",
    )
    add_overwrite_argument(parser)
    parser.add_argument(
        "--no-mae",
        dest="save_mae",
        action="store_false",
        help="do not write the full encoder+decoder weights (mae.safetensors)",
    )


def check(args: argparse.Namespace) -> None:
    """The checkpoint exists and the output folder can take an export, before anything is read."""
    from ..outputs import check_output

    check_input(args.checkpoint, "checkpoint", "file")
    # the same check as export_encoder's, without importing torch first
    check_output(
        args.out,
        folder=True,
        overwrite=args.overwrite,
        contents=EXPORT_FILES,
        what="export folder",
    )


def run(args: argparse.Namespace) -> int:
    """Export; print the written files and how to load and publish them."""
    from ..export import export_encoder
    from ..models.factory import export_architecture

    out = export_encoder(
        args.checkpoint, args.out, save_mae=args.save_mae, overwrite=args.overwrite
    )
    print(f"exported {args.checkpoint} -> {out}")
    for name in sorted(p.name for p in out.iterdir()):
        print(f"  {out / name}")
    print(
        f'load: timm.create_model("{export_architecture(out)}", pretrained=True, '
        f'pretrained_cfg_overlay=dict(file="{out}"))'
    )
    print(f'publish: huggingface_hub.upload_folder(repo_id="<user>/<repo>", folder_path="{out}")')
    return 0
