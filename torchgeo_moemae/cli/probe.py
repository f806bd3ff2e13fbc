"""``moemae probe``: fit linear probes on stored embeddings and report the paper's metrics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..outputs import check_output
from ..vocabulary import DEFAULT_POOL, POOLS, embedding_folder
from .common import add_overwrite_argument, check_input, split_names

EPILOG = """\
examples:
  # the paper's probe (sklearn LogisticRegression, SAG, C=1, 1000 iterations; one-vs-rest if multi-label)
  moemae probe --embeddings emb/ben --pool cls,avg --method sklearn --out results/ben_sklearn.json

  # the streaming torch probe for all-token features at full scale (GPU if available)
  moemae probe --embeddings emb/ben --pool all --method torch --device cuda --out results/ben_all.json

reads EMBEDDINGS/<split>_<pool>/ written by `moemae embed`; prints a markdown report (the metrics,
then the weights, model, data and N behind them) and writes JSON (and the .md report next to it;
existing ones are kept unless --overwrite). Train and evaluation
embeddings that share sample ids are refused (--allow-overlap: probe anyway, with a warning). Metrics: multi-label: micro/macro precision, recall, F1 (threshold 0.5),
micro/macro mAP; multi-class: OA and macro precision, recall, F1.
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae probe``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = "Fit linear probes on frozen embeddings and report the paper's metrics."
    parser.epilog = EPILOG
    parser.add_argument(
        "--embeddings", type=Path, required=True, help="directory from `moemae embed`"
    )
    parser.add_argument(
        "--pool", default=DEFAULT_POOL, help=f"comma-separated, from {','.join(POOLS)}"
    )
    parser.add_argument("--method", choices=("sklearn", "torch"), default="sklearn")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--eval-split", default="test")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength (default: 1)")
    parser.add_argument("--standardize", action="store_true", help="z-score features first")
    parser.add_argument("--max-iter", type=int, default=None, help="solver iterations")
    parser.add_argument("--device", help="torch probe device (default: cuda if available)")
    parser.add_argument("--epochs", type=int, default=10, help="torch probe Adam epochs")
    parser.add_argument(
        "--optimizer",
        choices=("auto", "lbfgs", "adam"),
        default="auto",
        help="torch probe optimiser: auto = L-BFGS if the features fit in 2 GiB, else streamed Adam",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--percent", action="store_true", help="print the table in percent")
    parser.add_argument("--out", type=Path, help="write the results as JSON (and a .md table)")
    add_overwrite_argument(parser)
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="probe even if the train and evaluation embeddings share sample ids (warns)",
    )


def check(args: argparse.Namespace) -> None:
    """The embedding directories exist and the outputs can be written, before any work."""
    check_input(args.embeddings, "--embeddings", "folder")
    for pool in split_names(args.pool, "--pool", POOLS):
        for split in dict.fromkeys((args.train_split, args.eval_split)):
            folder = args.embeddings / embedding_folder(split, pool)
            if not (folder / "manifest.json").is_file():
                raise FileNotFoundError(
                    f"{folder} is not an embedding directory (no manifest.json); create it with "
                    f"`moemae embed --split {split} --pool {pool}`"
                )
    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, what="--out")
        check_output(args.out.with_suffix(".md"), overwrite=args.overwrite, what="--out")


def run(args: argparse.Namespace) -> int:
    """Probe each pool; print the table; save JSON and Markdown."""
    from .. import __version__
    from ..probe.api import probe_embedding_dirs, probe_report
    from ..probe.metrics import save_metrics

    # the sklearn fit shows its elapsed time, the torch one its steps
    kwargs: dict[str, Any] = {"C": args.C, "standardize": args.standardize, "progress": True}
    if args.max_iter is not None:
        kwargs["max_iter"] = args.max_iter
    if args.method == "torch":
        kwargs.update(device=args.device, epochs=args.epochs, optimizer=args.optimizer)
    results, made_by = probe_embedding_dirs(
        args.embeddings,
        split_names(args.pool, "--pool", POOLS),
        args.method,
        args.train_split,
        args.eval_split,
        args.seed,
        args.allow_overlap,
        log=lambda line: print(line, flush=True),
        **kwargs,
    )
    report = probe_report(
        results, made_by, args.method, args.train_split, args.eval_split, args.percent
    )
    print(report)
    if args.out is not None:
        payload = {
            "method": args.method,
            "embeddings": str(args.embeddings),
            "train_split": args.train_split,
            "eval_split": args.eval_split,
            "results": results,
            # which weights, model, pool, data and package made the embeddings of each result,
            # and how many samples both splits hold
            "embeddings_provenance": made_by,
            "package_version": __version__,
        }
        save_metrics(payload, args.out, markdown=report)
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0
