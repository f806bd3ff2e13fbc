"""``moemae embed-scene``: embedding maps of Landsat scenes (COG + STAC), one scene or an archive."""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from ..vocabulary import DEFAULT_MAX_CLOUD_FRACTION, DEFAULT_POOL, MAP_POOLS, PRECISIONS
from .common import (
    CommandError,
    add_loader_arguments,
    add_overwrite_argument,
    add_weights_arguments,
    check_input,
    check_loader,
    check_weights,
    model_from_args,
)

EPILOG = """\
examples:
  # one scene -> liverpool.tif (+ .png quicklook, .json STAC Item), with the authors' weights
  moemae embed-scene LC08_L2SP_204023_20200927_20201006_02_T1.tar --out liverpool.tif \\
      --weights pretrained_S_best.pth

  # an archive: every product of a folder, a list, or a STAC search saved as JSON -> maps/
  moemae embed-scene 'archive/*.tar' --out maps/ --weights pretrained_S_best.pth
  moemae embed-scene search.json --out maps/ --on-error skip \\
      --weights MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS

  # overlapping windows (every 20 px), on 4 GPUs of each of 2 nodes (DDP, bf16 autocast)
  moemae embed-scene scenes.txt --out maps/ --weights export/ --stride 20 --devices 4 \\
      --num-nodes 2

output: per scene <id>.tif (Cloud-Optimized GeoTIFF, one float32 band per embedding dimension,
        NaN = fill or cloud), <id>.png (PCA-RGB quicklook) and <id>.json (STAC Item); for the run
        collection.json (STAC Collection) and summary.json. With --out X.tif (one scene): X.tif,
        X.png, X.json. A rerun skips the maps already finished with the same settings (resume);
        other existing outputs are kept unless --overwrite. An interrupted run leaves no partial
        file. Exit status 1 if a scene failed (--on-error skip), 2 on an error.
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae embed-scene``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Embed every 40x40 px window of Landsat 8/9 Collection 2 Level-2 scenes (SR_B1..SR_B7, "
        "MTL or STAC Item, QA_PIXEL for the cloud mask) on a grid fixed in each scene's CRS, and "
        "write each scene's embedding map as a Cloud-Optimized GeoTIFF with a STAC Item."
    )
    parser.epilog = EPILOG
    parser.add_argument(
        "input",
        nargs="+",
        help="product folders or .tar files, globs ('archive/*.tar'), .txt files listing inputs "
        "one per line, STAC Item / ItemCollection .json files",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder, or a .tif for a single scene"
    )
    # The encoder (a --random-init one is seeded: every process of a run has the same) and the
    # loader (each worker reads whole scenes): the same options as every command's.
    add_weights_arguments(parser, mae=False)
    add_loader_arguments(parser)
    # The maps.
    parser.add_argument("--stride", type=int, default=40, help="window step in px (default: 40)")
    parser.add_argument(
        "--pool",
        choices=MAP_POOLS,
        default=DEFAULT_POOL,
        help="CLS token or mean of all tokens, before the final LayerNorm (default: %(default)s)",
    )
    parser.add_argument(
        "--max-fill-fraction",
        type=float,
        default=1.0,
        help="windows with more fill than this are nodata (default: 1, only all-fill windows)",
    )
    parser.add_argument(
        "--max-cloud-fraction",
        type=float,
        default=DEFAULT_MAX_CLOUD_FRACTION,
        help="windows with more QA_PIXEL cloud, dilated cloud, cloud shadow or snow than this are "
        "nodata (default: %(default)s; 1: no cloud mask)",
    )
    # The run.
    parser.add_argument(
        "--devices", type=int, default=1, help="devices (processes) per node, DDP (default: 1)"
    )
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (default: 1)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 elsewhere (default); bf16; 32",
    )
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="a damaged or unreadable scene: stop (raise, default) or report it and go on (skip)",
    )
    parser.add_argument("--no-quicklook", dest="quicklook", action="store_false")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    add_overwrite_argument(parser)


def check(args: argparse.Namespace) -> None:
    """Inputs, weights and output, before the model is loaded."""
    from ..outputs import check_output

    for value in args.input:
        if not Path(value).exists():
            if set("*?[") & set(value):
                if not glob.glob(value):
                    raise FileNotFoundError(f"input {value} matches no file or folder")
            else:
                check_input(Path(value), "input")
    check_weights(args)
    check_loader(args)
    for name in ("stride", "devices", "num_nodes"):
        if getattr(args, name) < 1:
            raise CommandError(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    one_file = args.out.suffix.lower() in (".tif", ".tiff")
    # Existing maps are checked (resumed or refused) once the model is known, before any window.
    check_output(args.out, folder=not one_file, overwrite=True, what="--out")


def run(args: argparse.Namespace) -> int:
    """Embed the scenes and print the summary and where the outputs went."""
    import torch

    from ..models import MoEMAEEncoder
    from ..scene import SceneError, embed_scenes
    from ..scene.callback import COLLECTION
    from ..utils import default_device

    device = default_device(args.device)
    if device.type == "cpu" and args.devices > 1:
        # --threads is the node's: shared by its processes
        torch.set_num_threads(max(1, torch.get_num_threads() // args.devices))
    if args.random_init:
        torch.manual_seed(0)  # every DDP process, and every rerun, gets the same encoder
    encoder, weights = model_from_args(args)
    if not isinstance(encoder, MoEMAEEncoder):
        raise CommandError(
            f"--model {args.model}: a scene map needs a MoE-MAE encoder (S, XS, XXS)"
        )
    try:
        summary = embed_scenes(
            args.input,
            args.out,
            encoder,
            weights=weights,
            stride=args.stride,
            pool=args.pool,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            max_fill_fraction=args.max_fill_fraction,
            max_cloud_fraction=args.max_cloud_fraction,
            device=device,
            devices=args.devices,
            num_nodes=args.num_nodes,
            precision=args.precision,
            quicklook=args.quicklook,
            progress=args.progress,
            overwrite=args.overwrite,
            on_error=args.on_error,
        )
    except SceneError as err:
        if err.summary is not None and err.summary.rank != 0:
            return 0  # rank 0 reports (a non-zero exit here would make Lightning kill rank 0)
        if err.summary is not None:
            print("\n".join(err.summary.lines()))
        raise
    if summary.rank != 0:
        return 0  # rank 0 reports and sets the exit status
    if args.out.suffix.lower() in (".tif", ".tiff") and not summary.failed:
        print(f"{args.out} (weights: {weights})")
        if args.quicklook:
            print(args.out.with_suffix(".png"))
    else:
        print("\n".join(summary.lines()))
        print(args.out / COLLECTION)
    return 1 if summary.failed else 0
