"""Pre-training throughput: images/s and peak memory of MoE-MAE training steps.

    python benchmarks/bench_train.py                      # S, batch 128, CPU (+ CUDA if present)
    python benchmarks/bench_train.py --size XXS --steps 5 --json bench_train.json

Each step is a full optimisation step of :class:`MoEMAEPretrainTask`'s model (masked forward, loss,
backward, gradient clipping, AdamW), bf16 autocast on CUDA, float32 on CPU. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA and the process's peak resident set size on CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

import torch
from tqdm import tqdm

from torchgeo_moemae.models import create_mae


def bench(size: str, batch_size: int, steps: int, warmup: int, device: str) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` untimed ones on ``device``."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = create_mae(size).to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    x = torch.randn(batch_size, 7, 40, 40, device=dev)
    lat = torch.rand(batch_size, device=dev) * 30 + 40
    lon = torch.rand(batch_size, device=dev) * 30 - 10
    time_ = torch.full((batch_size,), 1.5e9, dtype=torch.float64, device=dev)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = model(x, lat, lon, time_).loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in tqdm(range(warmup), desc=f"{device} warm-up", leave=False):
        step()
    if cuda:
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"{device} {size} b{batch_size}", leave=False):
        step()
    if cuda:
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        name = torch.cuda.get_device_name(dev)
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        name = f"CPU ({torch.get_num_threads()} threads)"
    return {
        "device": name,
        "size": size,
        "batch_size": batch_size,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "images_per_second": batch_size * steps / seconds,
        "peak_memory_mb": peak_mb,
        "precision": "bf16-mixed" if cuda else "32-true",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on CPU and CUDA (if available); print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("S", "XS", "XXS"), default="S")
    parser.add_argument("--batch-size", type=int, default=128, help="the paper's batch: 128")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--devices", nargs="+", default=None, help="default: cpu and cuda if present"
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = [bench(args.size, args.batch_size, args.steps, args.warmup, d) for d in devices]
    header = f"{'device':<32} {'size':>4} {'batch':>5} {'s/step':>8} {'img/s':>9} {'peak MB':>9}"
    print(header)
    for r in results:
        print(
            f"{r['device']:<32} {r['size']:>4} {r['batch_size']:>5} {r['seconds_per_step']:>8.3f} "
            f"{r['images_per_second']:>9.1f} {r['peak_memory_mb']:>9.0f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
