"""``moemae evaluate``: the paper's linear-probe evaluation of several encoders, beside its tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..outputs import check_output
from ..vocabulary import PAPER_POOLS
from .common import (
    CommandError,
    add_loader_arguments,
    add_overwrite_argument,
    add_sample_arguments,
    check_input,
    check_loader,
    split_names,
)

#: the files ``moemae evaluate`` writes in --out
OUTPUTS = ("evaluation.json", "evaluation.md")

EPILOG = """\
examples:
  # the published weights on both Landsat-Bench datasets (the paper's Tables 5 and 6)
  moemae evaluate --bigearthnet-root data/bigearthnet-ls --eurosat-root data/eurosat-ls --download

  # beside TorchGeo's SSL4EO-L baselines (Table 7), a quick look on 500 patches per split
  moemae evaluate --encoder MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS \\
      --encoder ResNet18_Weights.LANDSAT_OLI_SR_MOCO --encoder ViTSmall16_Weights.LANDSAT_OLI_SR_MOCO \\
      --eurosat-root data/eurosat-ls --limit 500

  # your own export or the authors' checkpoint; TorchGeo's weights from a local file
  moemae evaluate --encoder export/ --encoder pretrained_S_best.pth --bigearthnet-root data/bigearthnet-ls
  moemae evaluate --encoder ResNet18_Weights.LANDSAT_OLI_SR_MOCO=resnet18_landsat_oli_sr_moco.pth \
      --eurosat-root data/eurosat-ls

Encoders: this package's weights names, export folders, checkpoint files (S unless an export's
config.json says otherwise) and TorchGeo weights names (Module_Weights.ENTRY, read through torch's
hub cache, $TORCH_HOME/hub/checkpoints; ENTRY=path: from a local file). MoE-MAE encoders get 40x40
patches z-scored with the BigEarthNet-L statistics and the samples' metadata as their weights were
trained (--time-source auto: the authors' weights get the time their loader parsed from each patch
id), probed on the CLS token, all tokens and their average (--pool); TorchGeo's models get
Landsat-Bench's input (patches resized to 40 px, EuroSAT-L 22 px, antialiased; reflectance 0..0.3
-> 0..1; 224x224) and are probed on their pooled features.
Embeddings are cached under --cache with checksums and what they depend on (weights digest, the
split's ids, preprocessing, metadata rule): a rerun reuses them, anything changed is redone.
output: OUT/evaluation.json and OUT/evaluation.md (one table per dataset: measured, paper, difference);
existing ones are kept unless --overwrite.
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae evaluate``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Linear-probe frozen encoders on BigEarthNet-L and EuroSAT-L with the paper's protocol and "
        "print the measured metrics beside the paper's published values."
    )
    parser.epilog = EPILOG
    parser.add_argument(
        "--encoder",
        action="append",
        help="weights name, export folder or checkpoint file; repeat for several "
        "(default: MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS)",
    )
    parser.add_argument("--bigearthnet-root", type=Path, help="BigEarthNet-L root")
    parser.add_argument("--eurosat-root", type=Path, help="EuroSAT-L root")
    parser.add_argument("--download", action="store_true", help="download missing datasets")
    add_sample_arguments(parser)
    parser.add_argument(
        "--pool",
        default=",".join(PAPER_POOLS),
        help="embeddings of MoE-MAE encoders, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--method",
        choices=("sklearn", "torch"),
        default="sklearn",
        help="sklearn: the paper's SAG probe (all features in memory); torch: the same objective, "
        "streamed from disk (for all-token features at full scale)",
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="at most N patches per split (a quick check)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/evaluate"),
        help="output folder (default: %(default)s)",
    )
    parser.add_argument("--cache", type=Path, help="embedding cache (default: OUT/cache)")
    add_loader_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="probe even if the train and test splits share patches (warns)",
    )
    add_overwrite_argument(parser)


def _roots(args: argparse.Namespace) -> dict[str, Path]:
    roots = {
        name: root
        for name, root in (
            ("bigearthnet_ls", args.bigearthnet_root),
            ("eurosat_ls", args.eurosat_root),
        )
        if root is not None
    }
    if not roots:
        raise CommandError(
            "give --bigearthnet-root and/or --eurosat-root (a dataset to evaluate on)"
        )
    return roots


def _pools(args: argparse.Namespace) -> list[str]:
    return split_names(args.pool, "--pool", PAPER_POOLS)


def _cache(args: argparse.Namespace) -> Path:
    return args.cache or args.out / "cache"


def check(args: argparse.Namespace) -> None:
    """Datasets, pools and outputs, before any work."""
    for name, root in _roots(args).items():
        if not args.download:
            check_input(root, f"--{name.split('_')[0]}-root", "folder")
    _pools(args)
    check_loader(args)
    check_output(args.out, folder=True, contents=OUTPUTS, overwrite=args.overwrite, what="--out")
    check_output(_cache(args), folder=True, overwrite=True, what="--cache")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the tables and write them."""
    from ..probe.evaluate import evaluate, format_evaluation, resolve_encoder, save_evaluation
    from ..probe.published import MOEMAE_WEIGHTS

    roots = _roots(args)
    pools = _pools(args)
    time_source = None if args.time_source == "auto" else args.time_source
    specs = [resolve_encoder(name, pools, time_source) for name in args.encoder or [MOEMAE_WEIGHTS]]
    rows = evaluate(
        specs,
        roots,
        cache_dir=_cache(args),
        method=args.method,
        limit=args.limit,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        download=args.download,
        on_error=args.on_error,
        seed=args.seed,
        allow_overlap=args.allow_overlap,
    )
    print(format_evaluation(rows))
    path = save_evaluation(
        rows,
        args.out,
        encoders=[s.name for s in specs],
        roots={k: str(v) for k, v in roots.items()},
        method=args.method,
        limit=args.limit,
        pools=pools,
    )
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0
