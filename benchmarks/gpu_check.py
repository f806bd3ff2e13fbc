"""The GPU check behind ``benchmarks/gpu_check.sh``: pre-training speed, memory and data rate.

Records, as JSON and a markdown table: train steps/s of size S at batch 128 and 1024 (eager and
``torch.compile``, bf16 autocast, fused AdamW), the peak GPU memory of each, the packed loader's
samples/s (``benchmarks/bench_data.py --quick``), the encoder's inference img/s, and the projected
wall time of the paper's run (500 epochs over 269,695 BigEarthNet-L patches at batch 128, the last
incomplete batch dropped: 1,053,500 optimiser steps). Runs in under 8 minutes on one GPU.

``--quick`` (size XXS, small batches, 2 steps, no compilation) runs on a CPU in seconds: CI uses it
so the script is known to work before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import REPO, environment, inputs, interleaved, median, peak_rss_mib, synchronize
from bench_train import our_step

from torchgeo_moemae.models import create_mae

#: The paper's pre-training run (Table 3).
PAPER_PATCHES, PAPER_BATCH, PAPER_EPOCHS = 269_695, 128, 500
PAPER_STEPS = PAPER_PATCHES // PAPER_BATCH * PAPER_EPOCHS


def train_rows(
    size: str, batches: list[int], compiles: list[bool], bf16: bool, device: torch.device,
    warmup: int, steps: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Steps/s and peak memory of each (batch, compiled) setting, timed one after the other."""
    rows = []
    for batch in batches:
        for compiled in compiles:
            torch.manual_seed(0)
            mae = create_mae(size).to(device).train()
            step = our_step(mae, inputs(batch, device), bf16=bf16, compiled=compiled)
            start = time.perf_counter()
            step()  # compilation, if any, happens here
            synchronize(device)
            first = time.perf_counter() - start
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = median(interleaved({"step": step}, device, warmup, steps)["step"])
            peak = (
                torch.cuda.max_memory_allocated(device) / 2**20
                if device.type == "cuda"
                else peak_rss_mib()
            )
            rows.append(dict(size=size, batch=batch, compiled=compiled,
                             precision="bf16-mixed" if bf16 else "32-true",
                             steps_per_s=1 / seconds, images_per_s=batch / seconds,
                             first_step_s=first, peak_memory_mib=peak))  # fmt: skip
            print(f"train {size} batch {batch:5} compiled={compiled!s:5} "
                  f"{1 / seconds:8.2f} steps/s {batch / seconds:9.0f} img/s "
                  f"peak {peak:7.0f} MiB (first step {first:.1f} s)", flush=True)  # fmt: skip
            del mae, step
    return rows


def inference_row(
    size: str, batch: int, bf16: bool, device: torch.device, warmup: int, steps: int
) -> dict[str, Any]:
    """Encoder inference img/s (eval mode, no_grad)."""
    encoder = create_mae(size).encoder.to(device).eval()
    data = inputs(batch, device)

    def step() -> None:
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            encoder.forward_features(
                data["image"], lat=data["lat"], lon=data["lon"], time=data["time"]
            )

    seconds = median(interleaved({"infer": step}, device, warmup, steps)["infer"])
    print(f"inference {size} batch {batch} {batch / seconds:9.0f} img/s", flush=True)
    return dict(size=size, batch=batch, precision="bf16" if bf16 else "fp32",
                images_per_s=batch / seconds)  # fmt: skip


def packed_loader_rate(timeout_s: float) -> tuple[float | None, str]:
    """``packed_samples_per_s`` from ``bench_data.py --quick --json`` (None and why if unavailable)."""
    script = REPO / "benchmarks" / "bench_data.py"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench_data.json"
        try:
            proc = subprocess.run(
                [sys.executable, str(script), "--quick", "--json", str(out)],
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None, f"bench_data.py --quick took over {timeout_s:.0f} s"
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return None, f"bench_data.py --quick --json failed (exit {proc.returncode}): {tail[0]}"
        value = json.loads(out.read_text()).get("packed_samples_per_s")
        if value is None:
            return None, "bench_data.py's JSON has no packed_samples_per_s"
        return float(value), "benchmarks/bench_data.py --quick"


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown page."""
    env = result["env"]
    lines = [
        "# GPU check",
        "",
        f"Device: {env['device']}; torch {env['torch']}; mode: {result['mode']}; "
        f"wall time of the check: {result['elapsed_s']:.0f} s.",
        "",
        "| size | batch | compiled | precision | steps/s | img/s | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["train"]:
        lines.append(
            f"| {r['size']} | {r['batch']} | {r['compiled']} | {r['precision']} | "
            f"{r['steps_per_s']:.2f} | {r['images_per_s']:.0f} | {r['peak_memory_mib']:.0f} |"
        )
    inf = result["inference"]
    packed = result["packed_samples_per_s"]
    proj = result["projection"]
    lines += [
        "",
        f"- Encoder inference ({inf['size']}, batch {inf['batch']}, {inf['precision']}): "
        f"{inf['images_per_s']:.0f} img/s",
        f"- Packed loader: {f'{packed:.0f} samples/s' if packed else 'not measured'} "
        f"({result['packed_source']})",
        f"- Paper run ({PAPER_EPOCHS} epochs x {PAPER_PATCHES:,} patches, batch {PAPER_BATCH}: "
        f"{PAPER_STEPS:,} steps) at the best measured batch-{proj['batch']} step "
        f"({proj['steps_per_s']:.2f} steps/s): {proj['hours_model_only']:.1f} h"
        + (
            f"; {proj['hours_with_loader']:.1f} h if the packed loader sets the pace"
            if proj["hours_with_loader"] is not None
            else ""
        ),
        "",
        "Peak memory: " + result["peak_memory_kind"] + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the check and write ``gpu_check.json`` and ``gpu_check.md`` under ``--out``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny CPU-friendly settings (CI)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument(
        "--no-compile", action="store_true", help="eager steps only (no torch.compile rows)"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks"), help="output folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.quick:
        size, batches, compiles, warmup, steps, infer_batch = "XXS", [2, 4], [False], 1, 2, 4
        if not cuda:
            torch.set_num_threads(1)  # tiny batches: threads only add contention on a shared CI box
    else:
        size, batches, compiles, warmup, steps, infer_batch = (
            "S",
            [128, 1024],
            [False, True],
            3,
            20,
            1024,
        )
    if args.no_compile:
        compiles = [False]
    bf16 = cuda  # bf16 autocast is slower than float32 on CPUs without native bf16

    train = train_rows(size, batches, compiles, bf16, device, warmup, steps)
    inference = inference_row(size, infer_batch, bf16, device, warmup, max(steps, 3))
    packed, packed_source = packed_loader_rate(timeout_s=60 if args.quick else 180)

    # projection from the fastest batch-128 setting (the paper's batch), or the quick run's first
    paper = [r for r in train if r["batch"] == PAPER_BATCH] or [
        r for r in train if r["batch"] == batches[0]
    ]
    best = max(paper, key=lambda r: r["steps_per_s"])
    loader_steps_per_s = packed / best["batch"] if packed else None
    paced = min(best["steps_per_s"], loader_steps_per_s) if loader_steps_per_s else None
    projection = dict(
        steps=PAPER_STEPS, batch=best["batch"], compiled=best["compiled"],
        steps_per_s=best["steps_per_s"], hours_model_only=PAPER_STEPS / best["steps_per_s"] / 3600,
        hours_with_loader=PAPER_STEPS / paced / 3600 if paced else None,
    )  # fmt: skip
    result = dict(
        mode="quick" if args.quick else "full",
        env=environment(device),
        train=train,
        inference=inference,
        packed_samples_per_s=packed,
        packed_source=packed_source,
        peak_memory_kind="torch.cuda.max_memory_allocated" if cuda else "process peak RSS",
        projection=projection,
        elapsed_s=time.perf_counter() - started,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))
    print(f"projected paper run: {projection['hours_model_only']:.1f} h (model only)")
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    if not math.isfinite(projection["hours_model_only"]):
        raise SystemExit("no finite training speed was measured")
    return result


if __name__ == "__main__":
    main()
