"""``moemae pack``: write Landsat-Bench splits as memory-mappable packs (see :mod:`~torchgeo_moemae.datasets.packed`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .datasets.packed import PACKABLE, pack_dataset


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``pack`` options to ``parser``."""
    parser.add_argument("--dataset", choices=sorted(PACKABLE), required=True)
    parser.add_argument("--root", type=Path, required=True, help="dataset root")
    parser.add_argument(
        "--split", default="train,val,test", help="comma-separated splits (default: all three)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output directory; one pack per split inside"
    )
    parser.add_argument("--patch-size", type=int, default=40, help="image size in px")
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="fail on a bad sample, or leave it out (listed in the manifest)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing packs of other content"
    )


def run(args: argparse.Namespace) -> int:
    """Pack each requested split into ``args.out/<split>``; prints the pack paths."""
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not splits:
        raise SystemExit("moemae pack: --split names no split")
    for split in splits:
        path = pack_dataset(
            args.dataset,
            args.out / split,
            split=split,
            root=args.root,
            overwrite=args.overwrite,
            patch_size=args.patch_size,
            on_error=args.on_error,
        )
        print(path)
    return 0
