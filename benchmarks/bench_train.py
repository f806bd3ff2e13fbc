"""MAE pre-training step throughput of this package beside the authors' training loop, same process.

Ours: :class:`MoEMAEPretrainTask`'s step (masked forward, ``L_mask + 0.1 L_vis + 0.5 L_moe``,
backward, gradient clipping at 1.0, fused AdamW). The authors': their own ``train_epoch`` from
``pretrain_mae.py`` on a one-batch loader (forward, loss, their NaN check, backward, clipping,
AdamW through their GradScaler). Both start from the same weights and are timed round-robin; ratios
are of medians. Peak memory: ``torch.cuda.max_memory_allocated`` of one step per variant on CUDA;
on CPU the process's peak resident set size after our steps alone (measured before the authors'
model exists) and at the end.

Examples::

    python benchmarks/bench_train.py --quick
    python benchmarks/bench_train.py --batch 128 --json bench_train.json
    python benchmarks/bench_train.py --device cuda --bf16 --compile
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable
from typing import Any

import torch
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
    peak_rss_mib,
    synchronize,
)

from torchgeo_moemae.models import MoEMAE, create_mae
from torchgeo_moemae.models.factory import load_into
from torchgeo_moemae.trainers.clipping import clip_grad_norm_

ALPHA, BETA = 0.1, 0.5


def our_step(
    mae: MoEMAE,
    data: dict[str, torch.Tensor],
    bf16: bool = False,
    compiled: bool = False,
) -> Callable[[], None]:
    """One optimisation step of the pre-training task (as in ``MoEMAEPretrainTask``)."""
    device = data["image"].device
    fused = device.type in ("cuda", "cpu")
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-4, weight_decay=0.05, fused=fused)
    forward = torch.compile(mae.forward) if compiled else mae.forward

    def step() -> None:
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            out = forward(data["image"], lat=data["lat"], lon=data["lon"], time=data["time"])
            loss = out.loss(ALPHA, BETA)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_(mae.parameters(), 1.0)
        optimizer.step()

    return step


def authors_step(
    pretrain_mae: Any, model: torch.nn.Module, data: dict[str, torch.Tensor]
) -> Callable[[], None]:
    """One step of the authors' ``train_epoch`` (their loop, their AMP policy: fp16 on CUDA)."""
    device = data["image"].device
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    meta = authors_metadata(data)
    labels = torch.zeros(data["image"].shape[0], 19, device=device)
    batch = (data["image"], labels, *meta.values())

    class Scheduler:  # constant lr: the schedule is not what is timed
        def step(self, step: int) -> float:
            return 3e-4

    def step() -> None:
        with contextlib.redirect_stderr(io.StringIO()):  # their tqdm bar
            pretrain_mae.train_epoch(
                model, [batch], optimizer, scaler, ALPHA, BETA, device.type, 0, Scheduler(), 1
            )

    return step


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the variants, print a table with ratios to the authors' loop, optionally write JSON."""
    args = parse_arguments(benchmark_parser(__doc__, rounds=5, unit="steps"), argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    data = inputs(args.batch, device)
    authors = authors_modules()
    authors_model = build_authors_mae(authors[0], args.size) if authors is not None else None
    initial = create_mae(args.size)
    if authors_model is not None:
        load_into(initial, authors_model.state_dict())  # same starting weights

    def fresh() -> MoEMAE:
        mae = create_mae(args.size)
        mae.load_state_dict(initial.state_dict())
        return mae.to(device).train()

    steps: dict[str, Callable[[], None]] = {"ours fp32": our_step(fresh(), data)}
    if args.bf16:
        steps["ours bf16"] = our_step(fresh(), data, bf16=True)
    if args.compile:
        steps["ours fp32 compiled"] = our_step(fresh(), data, compiled=True)
        if args.bf16:
            steps["ours bf16 compiled"] = our_step(fresh(), data, bf16=True, compiled=True)

    compile_s = first_call_seconds(steps, device)  # before the peak memory: compilation's own
    # peak memory of one step per variant (before the authors' model is on the device)
    peak_mib: dict[str, float] = {}
    for name, step in steps.items():
        if cuda:
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        peak_mib[name] = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss_mib()
    if authors_model is not None and authors is not None:
        authors_model = authors_model.to(device)
        steps["authors fp32" if not cuda else "authors fp16-amp"] = authors_step(
            authors[1], authors_model, data
        )

    times = interleaved(steps, device, args.warmup, args.rounds)
    base_name = next((n for n in times if n.startswith("authors")), None)
    base = median(times[base_name]) if base_name is not None else None
    print(f"MAE train step, size {args.size}, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'variant':22} {'ms/step':>9} {'img/s':>9} {'vs authors':>10} {'peak MiB':>9}")
    rows = []
    for name, values in times.items():
        seconds = median(values)
        ratio = base / seconds if base is not None else None
        peak = peak_mib.get(name)
        rows.append(dict(variant=name, ms_per_step=seconds * 1e3, images_per_s=args.batch / seconds,
                         ratio_to_authors=ratio, peak_memory_mib=peak))  # fmt: skip
        shown = f"{ratio:9.2f}x" if ratio is not None else f"{'-':>10}"
        peak_shown = f"{peak:9.0f}" if peak is not None else f"{'-':>9}"
        print(f"{name:22} {seconds * 1e3:9.1f} {args.batch / seconds:9.1f} {shown} {peak_shown}")
    floor = kernel_floor(steps["ours fp32"], base) if args.floor and not cuda else None
    for name, seconds in compile_s.items():
        print(f"first step (compilation) of {name}: {seconds:.1f} s")
    memory = "torch.cuda.max_memory_allocated" if cuda else "process peak RSS after our steps"
    print(f"peak memory: {memory}; process peak RSS at the end: {peak_rss_mib():.0f} MiB")
    result = dict(benchmark="mae_train_step", size=args.size, batch=args.batch, rounds=args.rounds,
                  peak_memory_kind=memory, process_peak_rss_mib=peak_rss_mib(),
                  env=environment(device), rows=rows, compile_s=compile_s,
                  kernel_floor=floor)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
