"""``moemae embed``: extract frozen embeddings of dataset splits to memory-mapped ``.npy`` files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..outputs import check_output, provenance_record
from ..vocabulary import DEFAULT_POOL, POOLS, embedding_folder
from .common import (
    add_dataset_arguments,
    add_loader_arguments,
    add_overwrite_argument,
    add_weights_arguments,
    check_dataset_root,
    check_loader,
    check_weights,
    make_datamodule,
    model_from_args,
    sample_time_for,
    split_names,
)

EPILOG = """\
examples:
  # CLS, mean and all-token embeddings of BigEarthNet-L train and test with an exported encoder
  # (its config.json says which model it is)
  moemae embed --weights export/ --dataset bigearthnet_ls --root data/ben \\
      --split train,test --pool cls,avg,all --out emb/ben

  # the authors' weights (a file: say which model it fits)
  moemae embed --model S --weights pretrained_S_best.pth --root data/ben --out emb/ben

  # a randomly initialised timm peer (7 input bands) on EuroSAT-L, as a baseline
  moemae embed --model resnet18 --random-init --dataset eurosat_ls --root data/eurosat \
      --split train,test --out emb/rn18

features: the paper's protocol by default (tokens before the encoder's final LayerNorm); --post-norm
takes them after it.
output: OUT/<split>_<pool>/{features.npy (N x D float32, memory-mappable), labels.npy, ids.npy,
        manifest.json}; existing ones are kept unless --overwrite; an interrupted run leaves none.
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
    add_weights_arguments(parser)
    add_dataset_arguments(parser)
    parser.add_argument(
        "--split", default="train,test", help="comma-separated splits (default: %(default)s)"
    )
    parser.add_argument(
        "--pool",
        default=DEFAULT_POOL,
        help=f"comma-separated pools from {','.join(POOLS)} (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_overwrite_argument(parser)
    add_loader_arguments(parser)
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="disable bf16 autocast")
    parser.add_argument(
        "--post-norm",
        dest="prenorm",
        action="store_const",
        const=False,
        default=None,
        help="tokens after the final LayerNorm (default: before it, the paper's protocol)",
    )


def check(args: argparse.Namespace) -> None:
    """Weights, dataset root, pools and every output folder, before anything is loaded."""
    check_weights(args)
    check_loader(args)
    check_dataset_root(args)
    pools = split_names(args.pool, "--pool", POOLS)
    for split in split_names(args.split, "--split"):
        for pool in pools:
            check_output(
                args.out / embedding_folder(split, pool), folder=True, overwrite=args.overwrite
            )


def run(args: argparse.Namespace) -> int:
    """Embed each split and print where the features went."""
    from ..probe.embed import extract_embeddings

    encoder, weights = model_from_args(args)
    time = sample_time_for(args, encoder)
    datamodule = make_datamodule(
        args,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        time_source=time.get("time_source"),
    )
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    model_name = cfg.get("architecture", args.model)
    info = {
        # which weights, model and package made these embeddings (the pool is added per folder)
        **provenance_record(weights, model_name),
        "model_name": model_name,
        "dataset_name": args.dataset,
        "root": str(args.root),
        # the samples' time and the hour rule the encoder read it with
        **time,
    }
    for split in split_names(args.split, "--split"):
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
            overwrite=args.overwrite,
        )
        for pool, emb in out.items():
            print(
                f"{split:>5} {pool:>3}: {emb.features.shape[0]} x {emb.features.shape[1]} -> {emb.path}"
            )
    return 0
