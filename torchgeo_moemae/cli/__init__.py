"""The ``moemae`` command line: one entry point, one module per command.

Each command module in this package exposes ``configure_parser(parser)``, ``run(args) -> int`` and
optionally ``check(args)`` (argument and path checks run before torch is imported), and is imported
only when its command runs, so ``moemae --help`` stays fast. Command modules import nothing heavy
at module level. Every command gets the
shared options of :func:`~torchgeo_moemae.cli.common.add_common_arguments` (``--threads``,
``--debug``) and runs through :func:`~torchgeo_moemae.cli.common.run_command` (one-line user errors,
exit code 2). To add a command: write ``cli/<name>.py`` and register it in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from .common import add_common_arguments, run_command

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


class Command(NamedTuple):
    """A ``moemae`` command: the module implementing it and its one-line help."""

    module: str
    help: str


#: command name -> (module, one-line help)
COMMANDS: dict[str, Command] = {
    "quickstart": Command(
        "torchgeo_moemae.cli.quickstart", "generate the built-in dataset, pre-train, export, probe"
    ),
    "export": Command(
        "torchgeo_moemae.cli.export", "export a Lightning checkpoint to a timm/Hub folder"
    ),
    "embed": Command("torchgeo_moemae.cli.embed", "extract frozen embeddings to disk"),
    "probe": Command(
        "torchgeo_moemae.cli.probe", "fit linear probes on embeddings and report metrics"
    ),
    "evaluate": Command(
        "torchgeo_moemae.cli.evaluate",
        "the paper's linear-probe evaluation of several encoders, beside its tables",
    ),
    "analyze": Command(
        "torchgeo_moemae.cli.analyze", "reconstructions, expert maps, sparsity table, plots"
    ),
    "embed-scene": Command(
        "torchgeo_moemae.cli.embed_scene", "embedding maps (COG + STAC) of Landsat scenes"
    ),
    "pack": Command(
        "torchgeo_moemae.cli.pack",
        "pack dataset splits into memory-mappable arrays for fast loading",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s subparser is configured (imports its module)."""
    parser = argparse.ArgumentParser(
        prog="moemae",
        description="MoE-MAE for Landsat: pre-training, embeddings, linear probes and analysis.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in COMMANDS.items():
        subparser = sub.add_parser(name, help=spec.help, description=spec.help)
        if name == command:
            add_common_arguments(subparser)
            importlib.import_module(spec.module).configure_parser(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``moemae COMMAND [options]``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command].module)
    return run_command(module.run, args, getattr(module, "check", None))


if __name__ == "__main__":
    sys.exit(main())
