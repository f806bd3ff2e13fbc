"""``moemae export CHECKPOINT OUT_DIR``: a Lightning checkpoint -> a timm / Hugging Face Hub folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export import MAE_FILENAME, export_encoder
from ..models import export_architecture


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
    """Export; print the written files and how to load and publish them."""
    out = export_encoder(args.checkpoint, args.out_dir, save_mae=args.save_mae)
    print(f"exported {args.checkpoint} -> {out}")
    for name in sorted(p.name for p in out.iterdir()):
        print(f"  {out / name}")
    print(
        f'load: timm.create_model("{export_architecture(out)}", pretrained=True, '
        f'pretrained_cfg_overlay=dict(file="{out}"))'
    )
    print(f'publish: huggingface_hub.upload_folder(repo_id="<user>/<repo>", folder_path="{out}")')
    return 0
