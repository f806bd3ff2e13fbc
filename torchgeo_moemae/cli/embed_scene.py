"""``moemae embed-scene``: the embedding map of a whole Landsat scene as a GeoTIFF."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..outputs import check_output
from ..vocabulary import DEFAULT_POOL, MAP_POOLS
from .common import CommandError, add_overwrite_argument, check_input, check_weights

EPILOG = """\
examples:
  # CLS embeddings every 40 px (1.2 km) of a Landsat 8/9 C2 L2 product, with the authors' weights
  moemae embed-scene LC08_L2SP_204023_20200927_20201006_02_T1.tar --out liverpool.tif \\
      --weights pretrained_S_best.pth

  # overlapping windows (every 20 px), mean of the patch tokens, on a GPU
  moemae embed-scene LC08_L2SP_204023_20200927_20201006_02_T1/ --out emb.tif --stride 20 \\
      --pool avg --device cuda

output: OUT (Cloud-Optimized GeoTIFF, one float32 band per embedding dimension, NaN = fill) and
        OUT with .png (PCA-RGB quicklook); open it with rasterio or torchgeo's RasterDataset.
        Existing outputs are kept unless --overwrite; an interrupted run leaves none.
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae embed-scene``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Embed every 40x40 px window of a Landsat 8/9 Collection 2 Level-2 scene (folder or .tar "
        "with SR_B1..SR_B7 and the MTL file) and write the embedding map as a GeoTIFF."
    )
    parser.epilog = EPILOG
    parser.add_argument("input", type=Path, help="product folder or .tar archive")
    parser.add_argument("--out", type=Path, required=True, help="output GeoTIFF")
    parser.add_argument(
        "--weights",
        type=Path,
        help="exported folder, .safetensors or the authors' .pth (default: the published weights "
        "if already in the Hugging Face cache)",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="embed with a randomly initialised encoder (a demo or baseline; without --weights)",
    )
    parser.add_argument(
        "--model",
        help="S, XS, XXS or a moemae_landsat* name (default: what an export folder records, else S)",
    )
    parser.add_argument("--stride", type=int, default=40, help="window step in px (default: 40)")
    parser.add_argument(
        "--pool",
        choices=MAP_POOLS,
        default=DEFAULT_POOL,
        help="CLS token or mean of all tokens, before the final LayerNorm (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="default: 256")
    parser.add_argument(
        "--max-fill-fraction",
        type=float,
        default=1.0,
        help="windows with more fill than this are nodata (default: 1, only all-fill windows)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default: cpu)")
    parser.add_argument("--no-quicklook", dest="quicklook", action="store_false")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    add_overwrite_argument(parser)


def check(args: argparse.Namespace) -> None:
    """Input, weights and outputs, before the model is loaded."""
    check_input(args.input, "input")
    if args.weights is not None or args.random_init:
        check_weights(args)
    if args.stride < 1:
        raise CommandError(f"--stride must be positive, got {args.stride}")
    check_output(args.out, overwrite=args.overwrite, what="--out")
    if args.quicklook:
        check_output(args.out.with_suffix(".png"), overwrite=args.overwrite, what="quicklook")


def run(args: argparse.Namespace) -> int:
    """Embed the scene and print where the outputs went."""
    from ..scene import embed_scene, load_scene_encoder

    encoder, weights = load_scene_encoder(args.model, args.weights, args.random_init)
    out = embed_scene(
        args.input,
        args.out,
        encoder,
        stride=args.stride,
        pool=args.pool,
        batch_size=args.batch_size,
        max_fill_fraction=args.max_fill_fraction,
        device=args.device,
        quicklook=args.quicklook,
        progress=args.progress,
        overwrite=args.overwrite,
        weights=weights,
    )
    print(f"{out} (weights: {weights})")
    if args.quicklook:
        print(out.with_suffix(".png"))
    return 0
