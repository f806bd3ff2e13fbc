"""``moemae export CHECKPOINT --out DIR``: a Lightning checkpoint -> a timm / Hugging Face Hub folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CommandError, add_overwrite_argument, check_input

#: :data:`torchgeo_moemae.export.EXPORT_FILES`, spelled out so that the checks do not import torch
EXPORT_FILES = ("model.safetensors", "config.json", "mae.safetensors")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae export``."""
    parser.add_argument(
        "checkpoint", type=Path, help="Lightning checkpoint (.ckpt) of the pre-training task"
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (model.safetensors, config.json, mae.safetensors)"
    )
    # the output folder was positional before --out; still accepted, with a deprecation notice
    parser.add_argument("out_dir", type=Path, nargs="?", help=argparse.SUPPRESS)
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

    if args.out_dir is not None:
        if args.out is not None:
            raise CommandError("give the output folder once, with --out")
        print(
            f"moemae export: the positional output folder is deprecated; use --out {args.out_dir}",
            file=sys.stderr,
        )
        args.out = args.out_dir
    if args.out is None:
        raise CommandError("--out is required (the output folder)")
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
    from ..models import export_architecture

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
