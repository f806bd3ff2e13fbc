"""``moemae pack``: write Landsat-Bench splits as memory-mappable packs (see :mod:`~torchgeo_moemae.datasets.packed`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..outputs import check_output
from ..vocabulary import DATASETS
from .common import add_dataset_arguments, check_dataset_root, split_names


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``pack`` options to ``parser``."""
    add_dataset_arguments(parser)
    parser.add_argument(
        "--split", default="train,val,test", help="comma-separated splits (default: all three)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output directory; one pack per split inside"
    )
    parser.add_argument("--patch-size", type=int, default=40, help="image size in px")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing packs (default: a pack of the same content is reused, one of "
        "other content refused)",
    )


def check(args: argparse.Namespace) -> None:
    """The dataset root and the pack folders, before the dataset is read."""
    check_dataset_root(args)
    for split in split_names(args.split, "--split"):
        check_output(args.out / split, folder=True, overwrite=True, what="pack folder")


def run(args: argparse.Namespace) -> int:
    """Pack each requested split into ``args.out/<split>``; prints each pack and whether it was
    written, rewritten or reused."""
    from ..datasets.packed import pack_dataset

    # a pack stores samples as read: their time from the label JSON unless told otherwise
    time: dict[str, Any] = {
        "time_source": "json" if args.time_source == "auto" else args.time_source
    }
    for split in split_names(args.split, "--split"):
        pack_dataset(
            args.dataset,
            args.out / split,
            split=split,
            root=args.root,
            overwrite=args.overwrite,
            download=args.download,
            patch_size=args.patch_size,
            on_error=args.on_error,
            max_fill_fraction=args.max_fill_fraction,
            **(time if DATASETS[args.dataset].metadata else {}),
            log=print,
        )
    return 0
