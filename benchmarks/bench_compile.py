"""Compile cost of the pre-training step with regional compilation (each block compiled once).

Times the first training step (forward, loss, backward, clipping, fused AdamW) of a model whose
blocks went through :func:`torchgeo_moemae.trainers.regional.compile_blocks`, then a steady step,
and prints Dynamo's per-phase compile times. Run it once per measurement (it takes minutes on a
small CPU); Inductor's caches (``TORCHINDUCTOR_FX_GRAPH_CACHE``, ``TORCHINDUCTOR_AUTOGRAD_CACHE``)
make a second run in the same environment much faster, so the first run of a fresh cache
(``TORCHINDUCTOR_CACHE_DIR`` pointing at an empty folder) is the cold cost.

Examples::

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/bench_compile.py --json out.json
    python benchmarks/bench_compile.py --size XXS --batch 8
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from _common import environment, inputs, synchronize
from bench_train import our_step

from torchgeo_moemae.models import create_mae
from torchgeo_moemae.trainers.regional import compile_blocks


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the compiling first step and a steady step; optionally write JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=("S", "XS", "XXS"), default="S")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    mae = create_mae(args.size).to(device).train()
    graphs = compile_blocks(mae)
    step = our_step(mae, inputs(args.batch, device))
    seconds = []
    for _ in range(2):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    phases = torch._dynamo.utils.compile_times(repr="csv", aggregate=True)
    print(f"regional compilation, size {args.size}, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads: {graphs} distinct blocks")  # fmt: skip
    print(f"first step (compilation included): {seconds[0]:.1f} s; next step {seconds[1]:.2f} s")
    result = dict(benchmark="regional_compile", size=args.size, batch=args.batch,
                  distinct_blocks=graphs, first_step_s=seconds[0], steady_step_s=seconds[1],
                  dynamo_compile_times=dict(zip(*phases, strict=False)),
                  env=environment(device))  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
