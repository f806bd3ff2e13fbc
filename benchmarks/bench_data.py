#!/usr/bin/env python3
"""Throughput of the BigEarthNet-L loader and datamodule on the real 200-patch sample.

Measures samples/s of ``BigEarthNetLS.__getitem__`` (read, crop, label JSON, reprojection) and
of the datamodule's train loader followed by the on-device augmentation (normalisation, and
flips with ``--augment``). Prints a table and optionally writes JSON.

    python benchmarks/bench_data.py [--root ../shared/data/bigearthnet-ls-sample] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import BigEarthNetLS, arrange_bigearthnet_sample

DEFAULT_ROOT = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bigearthnet-ls-sample"
)


def rate(run: Callable[[], int], repeats: int) -> float:
    """Best samples/s over ``repeats`` runs of ``run`` (which returns the samples it produced)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        n = run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def dataset_root(path: Path, scratch: Path) -> Path:
    """``path`` if it is in the Landsat-Bench layout, else the flat sample arranged under scratch."""
    if (path / BigEarthNetLS.directory).is_dir():
        return path
    return arrange_bigearthnet_sample(path, scratch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="sample or dataset root")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment", action="store_true", help="add random flips")
    args = parser.parse_args()
    if (
        not (args.root / "samples.csv").is_file()
        and not (args.root / BigEarthNetLS.directory).is_dir()
    ):
        print(f"skipped: no BigEarthNet-L data at {args.root}")
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        root = dataset_root(args.root, Path(scratch))
        ds = BigEarthNetLS(root, on_error="skip")

        def read_all() -> int:
            for i in range(len(ds)):
                ds[i]
            return len(ds)

        dm = BigEarthNetLSDataModule(
            root=root,
            batch_size=args.batch_size,
            num_workers=args.workers,
            augment=args.augment,
            on_error="skip",
        )
        dm.setup("fit")
        aug = dm.train_aug if dm.train_aug is not None else dm.aug

        def load_batches() -> int:
            n = 0
            for batch in dm.train_dataloader():
                n += len(aug(batch)["image"])
            return n

        results = {
            "dataset_getitem": rate(read_all, args.repeats),
            "datamodule_train_loader_plus_aug": rate(load_batches, args.repeats),
        }

    info = {
        "samples": len(ds),
        "skipped": len(ds.skipped),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "augment": args.augment,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "samples_per_s": {k: round(v, 1) for k, v in results.items()},
    }
    print(
        f"BigEarthNet-L sample: {len(ds)} patches ({len(ds.skipped)} skipped), "
        f"batch {args.batch_size}, workers {args.workers}, augment {args.augment}"
    )
    print(f"{'what':<36}{'samples/s':>12}")
    for name, value in results.items():
        print(f"{name:<36}{value:>12.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
