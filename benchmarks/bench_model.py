"""Encoder inference throughput of this package beside the authors' code, in the same process.

Both models get the same weights (the authors' random init, converted), the authors' gate noise is
silenced (deterministic routing, as at our inference), and the variants are timed round-robin so a
shared machine's load hits all alike; the ratios are of medians. Without the authors' code
(``../shared/reference/geo-moe-mae``) only this package is timed.

Examples::

    python benchmarks/bench_model.py --quick
    python benchmarks/bench_model.py --batch 128 --bf16 --compile --json bench_model.json
    python benchmarks/bench_model.py --device cuda --bf16 --compile
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from _common import (
    authors_metadata,
    authors_modules,
    benchmark_parser,
    build_authors_mae,
    environment,
    first_call_seconds,
    inputs,
    interleaved,
    kernel_floor,
    median,
    parse_arguments,
    set_dispatch,
    silence_authors_gate_noise,
)

from torchgeo_moemae.models import create_mae
from torchgeo_moemae.models.factory import load_into


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the variants, print a table with ratios to the authors' code, optionally write JSON."""
    parser = benchmark_parser(__doc__, rounds=7, unit="calls")
    parser.add_argument("--dispatches", action="store_true", help="also time each MoE dispatch")
    args = parse_arguments(parser, argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = create_mae(args.size).encoder
    authors = authors_modules()
    authors_encoder = None
    if authors is not None:
        authors_mae = build_authors_mae(authors[0], args.size)
        silence_authors_gate_noise(authors_mae)
        load_into(ours, authors_mae.state_dict())  # same weights: same routing
        authors_encoder = authors_mae.encoder.to(device).eval()
    ours = ours.to(device).eval()
    data = inputs(args.batch, device)
    meta = dict(lat=data["lat"], lon=data["lon"], time=data["time"])

    def run(model: Callable[..., torch.Tensor], dtype: torch.dtype | None = None) -> Callable:
        autocast = torch.autocast(device.type, dtype) if dtype is not None else nullcontext()

        def step() -> torch.Tensor:
            with torch.no_grad(), autocast:
                return model(data["image"], **meta)

        return step

    steps: dict[str, Callable[[], Any]] = {"ours fp32": run(ours.forward_features)}
    if args.dispatches:
        for dispatch in ("routed", "fused", "loop"):
            model = create_mae(args.size).encoder.to(device).eval()
            model.load_state_dict(ours.state_dict())
            set_dispatch(model, dispatch)
            steps[f"ours fp32 {dispatch}"] = run(model.forward_features)
    if args.bf16:
        steps["ours bf16"] = run(ours.forward_features, torch.bfloat16)
    if args.compile:
        compiled = torch.compile(ours.forward_features)
        steps["ours fp32 compiled"] = run(compiled)
        if args.bf16:
            steps["ours bf16 compiled"] = run(compiled, torch.bfloat16)
    if authors_encoder is not None:
        am = authors_metadata(data)
        steps["authors fp32"] = lambda: authors_encoder(data["image"], **am)[0]

    # agreement: our fp32 tokens vs the authors'; bf16 embeddings (CLS) vs fp32
    checks: dict[str, float] = {}
    reference = steps["ours fp32"]().float()
    if "authors fp32" in steps:
        with torch.no_grad():
            checks["max_abs_diff_to_authors"] = (
                (steps["authors fp32"]() - reference).abs().max().item()
            )
    for name in steps:
        if "bf16" in name:
            cls = ours.cls_index
            cos = F.cosine_similarity(steps[name]().float()[:, cls], reference[:, cls], dim=-1)
            checks[f"min_cls_cosine {name} vs fp32"] = cos.min().item()

    compile_s = first_call_seconds(steps, device)
    times = interleaved(steps, device, args.warmup, args.rounds)
    base = median(times["authors fp32"]) if "authors fp32" in times else None
    rows = []
    print(f"encoder inference, size {args.size}, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'variant':24} {'ms/batch':>9} {'img/s':>9} {'vs authors':>10}")
    for name, values in times.items():
        seconds = median(values)
        ratio = base / seconds if base is not None else None
        rows.append(dict(variant=name, ms_per_batch=seconds * 1e3,
                         images_per_s=args.batch / seconds, ratio_to_authors=ratio))  # fmt: skip
        shown = f"{ratio:9.2f}x" if ratio is not None else f"{'-':>10}"
        print(f"{name:24} {seconds * 1e3:9.1f} {args.batch / seconds:9.1f} {shown}")
    floor = kernel_floor(steps["ours fp32"], base) if args.floor and device.type == "cpu" else None
    for key, value in checks.items():
        print(f"{key}: {value:.6g}")
    for name, seconds in compile_s.items():
        print(f"first call (compilation) of {name}: {seconds:.1f} s")
    result = dict(benchmark="encoder_inference", size=args.size, batch=args.batch,
                  rounds=args.rounds, env=environment(device), rows=rows, checks=checks,
                  compile_s=compile_s, kernel_floor=floor)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
