"""The ``moemae`` command line: one entry point, one subcommand per task.

Each subcommand lives in its own module exposing ``configure_parser(parser)`` and ``run(args) -> int``;
modules are imported only when their subcommand is used, so ``moemae --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": (
        "torchgeo_moemae.quickstart",
        "generate the built-in dataset, pre-train, export, probe",
    ),
    "export": ("torchgeo_moemae.export", "export a Lightning checkpoint to a timm/Hub folder"),
    "embed": ("torchgeo_moemae.probe.cli_embed", "extract frozen embeddings to disk"),
    "probe": (
        "torchgeo_moemae.probe.cli_probe",
        "fit linear probes on embeddings and report metrics",
    ),
    "embed-scene": (
        "torchgeo_moemae._cli_embed_scene",
        "embedding map of a whole Landsat scene as a GeoTIFF",
    ),
    "analyze": (
        "torchgeo_moemae.analysis.cli",
        "reconstructions, expert maps, sparsity table, plots",
    ),
}


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The top-level parser with one (lazily configured) subparser per command."""
    parser = argparse.ArgumentParser(
        prog="moemae",
        description="MoE-MAE for Landsat: pre-training, embeddings, linear probes and analysis.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser, sub


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``moemae COMMAND [options]``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, sub = build_parser()
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        module.configure_parser(sub.choices[argv[0]])
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
