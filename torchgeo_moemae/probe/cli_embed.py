"""``moemae embed``: extract frozen embeddings of a dataset split to memory-mapped ``.npy`` files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .embed import POOLS, extract_embeddings
from .encoders import build_encoder

DATAMODULES = {
    "bigearthnet_ls": "torchgeo_moemae.datamodules.BigEarthNetLSDataModule",
    "eurosat_ls": "torchgeo_moemae.datamodules.EuroSATLSDataModule",
}

EPILOG = """\
examples:
  # CLS, mean and all-token embeddings of BigEarthNet-L train and test with the authors' weights
  moemae embed --weights pretrained_S_best.pth --dataset bigearthnet_ls --root data/ben \\
      --split train,test --pool cls,avg,all --out emb/ben

  # a timm peer (7 input bands, random init unless --weights) on EuroSAT-L
  moemae embed --model resnet18 --dataset eurosat_ls --root data/eurosat --split train,test --out emb/rn18

output: OUT/<split>_<pool>/{features.npy (N x D float32, memory-mappable), labels.npy, manifest.json}
then:   moemae probe --embeddings OUT --pool cls --method sklearn
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moemae embed``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Embed dataset splits with a frozen encoder (eval mode, deterministic routing, bf16 autocast "
        "on CUDA) and write the features chunk by chunk to memory-mapped .npy files."
    )
    parser.epilog = EPILOG
    parser.add_argument(
        "--model",
        default="moemae_landsat",
        help="S/XS/XXS, a moemae_landsat* timm name, or any timm model (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="encoder weights: exported folder, .safetensors or the authors' .pth (default: random init)",
    )
    parser.add_argument("--dataset", choices=sorted(DATAMODULES), default="bigearthnet_ls")
    parser.add_argument(
        "--root", type=Path, default=Path("data"), help="dataset root (default: data)"
    )
    parser.add_argument(
        "--split", default="train,test", help="comma-separated splits (default: %(default)s)"
    )
    parser.add_argument(
        "--pool", default="cls", help=f"comma-separated pools from {','.join(POOLS)} (default: cls)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="disable bf16 autocast")
    parser.add_argument(
        "--prenorm",
        action="store_true",
        help="tokens before the final LayerNorm (the authors' reference code) instead of after",
    )
    parser.add_argument("--download", action="store_true", help="download the dataset if missing")


def run(args: argparse.Namespace) -> int:
    """Embed each split and print where the features went."""
    import importlib

    module, cls = DATAMODULES[args.dataset].rsplit(".", 1)
    datamodule = getattr(importlib.import_module(module), cls)(
        root=args.root,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        download=args.download,
    )
    encoder = build_encoder(args.model, args.weights)
    info = {
        "model_name": args.model,
        "weights": str(args.weights) if args.weights else None,
        "dataset_name": args.dataset,
        "root": str(args.root),
    }
    for split in [s.strip() for s in args.split.split(",") if s.strip()]:
        out = extract_embeddings(
            encoder,
            datamodule,
            split,
            pools=args.pool,
            out_dir=args.out,
            device=args.device,
            amp=args.amp,
            prenorm=args.prenorm,
            manifest=info,
        )
        for pool, emb in out.items():
            print(
                f"{split:>5} {pool:>3}: {emb.features.shape[0]} x {emb.features.shape[1]} -> {emb.path}"
            )
    (Path(args.out) / "embed_args.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0
