#!/usr/bin/env python3
"""Loading throughput of BigEarthNet-L: GeoTIFF datamodule versus packed datamodule, one core.

Both paths produce the pre-training batches: normalised float32 (B, 7, 40, 40) center crops with
random horizontal/vertical flips, plus labels and metadata. The TIFF path reads and crops every
patch (``BigEarthNetLSDataModule``, kornia augmentation); the packed path slices a pack written by
``pack_dataset`` (``PackedDataModule``), from host memory and, with ``on_device``, from a copy on
the device. Before timing, the unshuffled, unflipped validation batches of both paths are checked
to be identical bit for bit. Runs on the real 200-patch sample when present, else on synthetic
patches. Prints a table; ``--json`` writes the results (key ``packed_samples_per_s``).

    python benchmarks/bench_data.py [--root ../shared/data/bigearthnet-ls-sample] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from torchgeo_moemae.datamodules import BigEarthNetLSDataModule, PackedDataModule
from torchgeo_moemae.datasets import (
    BigEarthNetLS,
    arrange_bigearthnet_sample,
    make_synthetic_bigearthnet_ls,
    pack_dataset,
)

DEFAULT_ROOT = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bigearthnet-ls-sample"
)
#: pass number -> that pass's batches
Batches = Callable[[int], Iterator[dict[str, Tensor]]]


def dataset_root(path: Path | None, scratch: Path, quick: bool) -> tuple[Path, str]:
    """A BigEarthNet-L root: ``path`` (Landsat-Bench layout or flat sample), else synthetic data."""
    if path is not None and (path / BigEarthNetLS.directory).is_dir():
        return path, f"BigEarthNet-L at {path}"
    if path is not None and (path / "samples.csv").is_file():
        return arrange_bigearthnet_sample(path, scratch / "real"), "real BigEarthNet-L sample"
    patches = 300 if quick else 1000
    root = make_synthetic_bigearthnet_ls(scratch / "synthetic", num_patches=patches, seed=0)
    return root, f"synthetic BigEarthNet-L ({patches} patches)"


def rate(batches: Batches, samples: int, device: torch.device) -> tuple[float, float]:
    """Samples per second of wall time and of this process's CPU time, drawing batches from
    passes ``batches(1)``, ``batches(2)``... until ``samples``.

    On a machine shared with other jobs the wall-clock rate depends on their load; with one
    thread, the CPU-time rate is what one dedicated core would deliver.
    """
    done, passes = 0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    while done < samples:
        passes += 1
        for batch in batches(passes):
            done += len(batch["image"])
            if done >= samples:
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


def tiff_batches(dm: BigEarthNetLSDataModule, device: torch.device) -> Iterator[dict[str, Tensor]]:
    """Train batches of the TIFF datamodule, transferred and augmented as Lightning would."""
    assert dm.train_aug is not None
    for batch in dm.train_dataloader():
        yield dm.train_aug({k: v.to(device) for k, v in batch.items()})


def packed_batches(
    dm: PackedDataModule, device: torch.device, epoch: int
) -> Iterator[dict[str, Tensor]]:
    """Train batches of the packed datamodule (epoch ``epoch``), transferred and finished."""
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    for batch in loader:
        yield dm.finish_batch(move_data_to_device(batch, device), "train")


def identical(tiff: BigEarthNetLSDataModule, *packed: PackedDataModule) -> bool:
    """Whether the unshuffled validation batches of the TIFF and packed paths agree bit for bit."""
    loaders = [dm.val_dataloader() for dm in packed]
    for a, *others in zip(tiff.val_dataloader(), *loaders, strict=True):
        a = tiff.aug(a)
        for dm, b in zip(packed, others, strict=True):
            b = dm.finish_batch(b, "val")
            if a.keys() != b.keys() or any(
                v.dtype != b[k].dtype or v.numpy().tobytes() != b[k].numpy().tobytes()
                for k, v in a.items()
            ):
                return False
    return True


def run_benchmark(
    root: Path | None = DEFAULT_ROOT,
    quick: bool = False,
    batch_size: int = 128,
    device: str | None = None,
) -> dict[str, Any]:
    """Time the TIFF and packed loaders on one thread and return the results.

    Args:
        root: a BigEarthNet-L root or the flat real sample; None or absent -> synthetic data.
        quick: fewer samples (CI); the rates are then rougher.
        batch_size: samples per batch.
        device: where batches go and ``on_device`` packs live (default: CUDA if available).

    Returns:
        rates in samples/s (``tiff_samples_per_s``, ``packed_samples_per_s``: host pack;
        ``packed_on_device_samples_per_s``), ``speedup`` (packed / TIFF), ``identical``, and
        the setting.
    """
    torch.set_num_threads(1)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with tempfile.TemporaryDirectory() as scratch:
        data_root, data = dataset_root(root, Path(scratch), quick)
        packs = Path(scratch) / "packs"
        pack_dataset(
            "bigearthnet_ls",
            packs / "val",
            split="val",
            root=data_root,
            on_error="skip",
            progress=False,
        )
        # The train pack repeats the split so that an epoch has many batches, as a real one
        # (2,100) does: the per-epoch start of a loader is then amortised as in training.
        train_split = BigEarthNetLS(data_root, split="train", on_error="skip")
        train_split.ids = train_split.ids * (tile := 2 if quick else 16)
        pack_dataset(train_split, packs / "train", progress=False)
        tiff = BigEarthNetLSDataModule(
            root=data_root, batch_size=batch_size, augment=True, on_error="skip"
        )
        tiff.setup("fit")
        host = PackedDataModule(root=packs, batch_size=batch_size, augment=True)
        on_device = PackedDataModule(
            root=packs, batch_size=batch_size, augment=True, on_device=True
        )
        for dm in (host, on_device):
            dm.setup("fit")
        train = len(train_split) // tile
        if train < batch_size:
            raise ValueError(f"{data}: {train} train samples, fewer than a batch ({batch_size})")
        same = identical(tiff, host, on_device)
        tiff_samples = 2 * batch_size if quick else 8 * batch_size
        packed_samples = 50 * batch_size if quick else 400 * batch_size
        for dm in (host, on_device):  # warm-up: page cache, device copy
            rate(partial(packed_batches, dm, target), batch_size, target)
        timed = {
            "tiff_samples_per_s": rate(lambda e: tiff_batches(tiff, target), tiff_samples, target),
            "packed_samples_per_s": rate(
                partial(packed_batches, host, target), packed_samples, target
            ),
            "packed_on_device_samples_per_s": rate(
                partial(packed_batches, on_device, target), packed_samples, target
            ),
        }
    rates = {k: wall for k, (wall, _) in timed.items()}
    cpu_rates = {k.replace("_per_s", "_per_cpu_s"): cpu for k, (_, cpu) in timed.items()}
    return {
        **{k: round(v, 1) for k, v in {**rates, **cpu_rates}.items()},
        "speedup": round(rates["packed_samples_per_s"] / rates["tiff_samples_per_s"], 1),
        "speedup_cpu": round(
            cpu_rates["packed_samples_per_cpu_s"] / cpu_rates["tiff_samples_per_cpu_s"], 1
        ),
        "identical": same,
        "data": data,
        "train_samples": train,
        "train_pack_tiles": tile,
        "batch_size": batch_size,
        "device": str(target),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "quick": quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="sample or dataset root")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--quick", action="store_true", help="fewer samples (for CI)")
    args = parser.parse_args()
    result = run_benchmark(args.root, args.quick, args.batch_size, args.device)
    print(
        f"{result['data']}: {result['train_samples']} train patches "
        f"(packed x{result['train_pack_tiles']}), batch {result['batch_size']}, "
        f"1 thread, device {result['device']}, load average {result['load_average']}"
    )
    print(f"{'path (normalised float32, crop, flips)':<40}{'samples/s':>12}{'per CPU s':>12}")
    for name in ("tiff", "packed", "packed_on_device"):
        wall, cpu = result[f"{name}_samples_per_s"], result[f"{name}_samples_per_cpu_s"]
        print(f"{name:<40}{wall:>12.1f}{cpu:>12.1f}")
    print(
        f"packed / TIFF: {result['speedup']}x (CPU time: {result['speedup_cpu']}x); "
        f"batches identical: {result['identical']}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
