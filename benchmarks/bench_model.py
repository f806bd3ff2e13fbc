"""Throughput of the MoE-MAE encoder and MAE train step: routed/fused MoE dispatch vs the per-expert loop.

Peers: timm ``vit_small_patch16_224`` and ``resnet18`` with 7 input bands at 224 px (Landsat-Bench
protocol). Prints a table and writes JSON.

Examples::

    python benchmarks/bench_model.py                      # CPU (and CUDA if present), quick settings
    python benchmarks/bench_model.py --device cuda --compile both --dtypes fp32 bf16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext

import timm
import torch
from torch import nn

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.models import MoEMAE, SwiGLUMoE, create_mae

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def set_dispatch(model: nn.Module, dispatch: str) -> None:
    """Switch every MoE layer of ``model`` to ``"fused"`` or ``"loop"``."""
    for module in model.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = dispatch  # type: ignore[assignment]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(step: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of ``step`` (median of ``iters`` after ``warmup`` calls)."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_one(
    name: str,
    mode: str,
    device: torch.device,
    dtype: str,
    batch: int,
    compiled: bool,
    warmup: int,
    iters: int,
) -> dict:
    """One row: images/s of inference (``mode="infer"``) or a full train step (``mode="train"``)."""
    torch.manual_seed(0)
    is_moemae = name.startswith("moemae")
    if is_moemae:
        dispatch = name.split(":")[1]
        model: nn.Module = (
            create_mae("S") if mode == "train" else timm.create_model("moemae_landsat")
        )
        set_dispatch(model, dispatch)
        size = 40
    else:
        model = timm.create_model(name, in_chans=7, num_classes=19 if mode == "train" else 0)
        size = 224
    model = model.to(device).train(mode == "train")
    x = torch.randn(batch, 7, size, size, device=device)
    meta = (
        dict(
            lat=torch.full((batch,), 50.0, device=device),
            lon=torch.full((batch,), 10.0, device=device),
            time=torch.full((batch,), 1.5e9, device=device, dtype=torch.float64),
        )
        if is_moemae
        else {}
    )
    fn: Callable = torch.compile(model) if compiled else model
    autocast = (
        torch.autocast(device.type, dtype=DTYPES[dtype]) if dtype != "fp32" else nullcontext()
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if mode == "train" else None
    target = torch.rand(batch, 19, device=device)

    def step() -> None:
        if optimizer is None:
            with torch.no_grad(), autocast:
                fn(x, **meta)
            return
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            if isinstance(model, MoEMAE):
                loss = fn(x, **meta).loss()
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(fn(x).float(), target)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = measure(step, device, warmup, iters)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return dict(
        model=name, mode=mode, device=device.type, dtype=dtype, batch=batch, compiled=compiled,
        img_size=size, images_per_s=batch / seconds, ms_per_step=seconds * 1e3, peak_mem_mib=peak,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark grid and print/write the results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", nargs="+", default=None, help="cpu and/or cuda (default: cpu + cuda if present)"
    )
    parser.add_argument("--batch", nargs="+", type=int, default=[64, 128])
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=None,
        choices=list(DTYPES),
        help="default: fp32 (+bf16 on cuda)",
    )
    parser.add_argument(
        "--compile",
        choices=["off", "on", "both"],
        default=None,
        help="default: off on cpu, both on cuda",
    )
    parser.add_argument(
        "--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"]
    )
    parser.add_argument("--peers", nargs="*", default=["vit_small_patch16_224", "resnet18"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--json", default="bench_model.json")
    args = parser.parse_args(argv)

    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        device = torch.device(dev)
        dtypes = args.dtypes or (["fp32", "bf16"] if dev == "cuda" else ["fp32"])
        compile_mode = args.compile or ("both" if dev == "cuda" else "off")
        compiles = {"off": [False], "on": [True], "both": [False, True]}[compile_mode]
        models = [
            "moemae_landsat:loop",
            "moemae_landsat:routed",
            "moemae_landsat:fused",
            *args.peers,
        ]
        for mode in args.modes:
            for dtype in dtypes:
                for compiled in compiles:
                    for batch in args.batch:
                        for name in models:
                            if compiled and name.endswith((":loop", ":routed")):
                                continue  # data-dependent shapes: not compile targets
                            row = bench_one(
                                name, mode, device, dtype, batch, compiled, args.warmup, args.iters
                            )
                            rows.append(row)
                            print(
                                f"{row['device']:4} {mode:5} {dtype:4} compile={compiled!s:5} B={batch:<4} "
                                f"{name:24} {row['images_per_s']:9.1f} img/s {row['ms_per_step']:9.2f} ms "
                                f"peak {row['peak_mem_mib']:.0f} MiB",
                                flush=True,
                            )
    # Fused/loop speed-up measured in the same run, per setting.
    speedups = []
    for row in rows:
        if (
            row["model"] in ("moemae_landsat:fused", "moemae_landsat:routed")
            and not row["compiled"]
        ):
            ref = next(
                r for r in rows
                if r["model"] == "moemae_landsat:loop"
                and all(r[k] == row[k] for k in ("mode", "device", "dtype", "batch"))
            )  # fmt: skip
            speedups.append({**{k: row[k] for k in ("model", "mode", "device", "dtype", "batch")},
                             "over_loop": row["images_per_s"] / ref["images_per_s"]})  # fmt: skip
    print("\nMoE dispatch vs the per-expert reference loop (same run):")
    print(f"{'dispatch':22} {'device':6} {'mode':5} {'dtype':5} {'batch':5} {'speed-up':>8}")
    for s in speedups:
        print(
            f"{s['model']:22} {s['device']:6} {s['mode']:5} {s['dtype']:5} {s['batch']:<5} "
            f"{s['over_loop']:8.2f}x"
        )
    env = dict(torch=torch.__version__, timm=timm.__version__, platform=platform.platform(),
               cpu_threads=torch.get_num_threads(),
               gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)  # fmt: skip
    with open(args.json, "w") as f:
        json.dump({"env": env, "rows": rows, "speedups": speedups}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
