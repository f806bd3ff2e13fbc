"""``moemae quickstart``: the whole pipeline on the built-in synthetic dataset, offline, in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..outputs import check_output
from ..quickstart import DEFAULT_CONFIG
from ..vocabulary import DEFAULT_POOL, POOLS
from .common import add_overwrite_argument, check_input


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae quickstart``."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("moemae_quickstart"),
        help="output folder (default: %(default)s)",
    )
    parser.add_argument("--max-epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument(
        "--num-patches", type=int, default=300, help="synthetic patches (default: %(default)s)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="pre-training config (LightningCLI YAML)",
    )
    parser.add_argument(
        "--pool",
        choices=POOLS,
        default=DEFAULT_POOL,
        help="probe embedding (default: %(default)s)",
    )
    parser.add_argument(
        "--post-norm",
        dest="prenorm",
        action="store_false",
        help="probe tokens after the final LayerNorm (default: before it, the paper's protocol)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    add_overwrite_argument(parser)
    # The quickstart model is tiny: one intra-op thread loses little, while two OpenMP threads on a
    # busy 2-core machine were measured 10x slower (spin-waiting).
    parser.set_defaults(threads=1)


def check(args: argparse.Namespace) -> None:
    """The config exists and the output folder is new, empty or may be overwritten."""
    check_input(args.config, "--config", "file")
    check_output(args.out, folder=True, overwrite=args.overwrite, what="--out")


def run(args: argparse.Namespace) -> int:
    """Run the quickstart and print the summary."""
    from ..quickstart import format_summary, run_quickstart

    summary = run_quickstart(
        args.out,
        args.config,
        args.max_epochs,
        args.num_patches,
        args.pool,
        args.seed,
        args.prenorm,
        args.overwrite,
    )
    print("\n" + format_summary(summary))
    return 0
