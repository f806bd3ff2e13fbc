"""The GPU check behind ``benchmarks/gpu_check.sh``: pre-training speed, memory and fidelity.

Records, as JSON and a markdown table (``docs/benchmarks/gpu_check.{json,md}``):

- train rows of size S at batch 128 and 1024, bf16 autocast, clipping at 1.0, fused AdamW, for
  the eager step (the task's path without capture), the captured step (one CUDA graph replay,
  :class:`~torchgeo_moemae.trainers.cuda_graph.GraphedTrainStep`) and the captured step with
  compiled blocks (:func:`~torchgeo_moemae.trainers.regional.compile_blocks`): steps/s, img/s,
  peak memory, the first step's seconds (compilation, warm-up and capture included) and the
  device kernels per step (``torch.profiler``; top-level ops on a CPU);
- the authors' training loop (their ``train_epoch``, their fp16 AMP) at batch 128 in the same
  run, and our fastest batch-128 row's ratio to it;
- a fidelity check: 200 steps of the captured and of the eager step from the same weights on the
  same batches; the mean losses of the last 50 steps must agree within 2 %;
- the encoder's inference img/s, the packed loader's samples/s, and the projected hours of the
  paper's run (1,053,500 optimiser steps at batch 128) at the fastest batch-128 row.

Each section is guarded: a failing row records its error and the others still run. Rows whose
turn comes after ``--budget-s`` seconds are skipped (and say so), so the check fits five
minutes with compilation and capture. ``--quick`` (size XXS, batches 2 and 4, a few steps, no
compilation) runs on a CPU in seconds, where the "captured" step runs its logic without a
graph; CI uses it. Results are written only when asked (``--out``) or by a full run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from _common import (
    REPO,
    authors_modules,
    build_authors_mae,
    environment,
    inputs,
    median,
    peak_rss_mib,
    synchronize,
)
from bench_train import ALPHA, BETA, authors_step, our_step
from torch import Tensor

from torchgeo_moemae.models import MoEMAE, create_mae
from torchgeo_moemae.trainers.cuda_graph import GraphedTrainStep
from torchgeo_moemae.trainers.guard import StepRecords
from torchgeo_moemae.trainers.pretrain import expert_utilisation
from torchgeo_moemae.trainers.regional import compile_blocks

#: The paper's pre-training run: 269,695 patches, 500 epochs at batch 128, last batch kept.
PAPER_PATCHES, PAPER_BATCH, PAPER_EPOCHS = 269_695, 128, 500
PAPER_STEPS = math.ceil(PAPER_PATCHES / PAPER_BATCH) * PAPER_EPOCHS
VARIANTS = ("eager", "captured", "captured+compiled")


def graphed_step(
    mae: MoEMAE, data: dict[str, Tensor], bf16: bool, compiled: bool
) -> tuple[Callable[[], dict[str, Tensor]], GraphedTrainStep]:
    """The task's captured step on ``data`` (without capture on a CPU): ``call() -> losses``."""
    device = data["image"].device
    if compiled:
        compile_blocks(mae)
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-4, weight_decay=0.05, fused=True)

    def loss_fn(batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        out = mae(batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"])
        with torch.no_grad():
            util = torch.cat([expert_utilisation(r) for r in out.routing])
        return out.loss(ALPHA, BETA), {}, util

    step = GraphedTrainStep(
        loss_fn, optimizer, StepRecords(), clip_val=1.0, capture=device.type == "cuda"
    )
    count = iter(range(10**9))

    def call() -> dict[str, Tensor]:
        i = next(count)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            return step(data, (i, 0, i))

    return call, step


def seconds_per_step(step: Callable[[], Any], device: torch.device, steps: int) -> float:
    """Median over 3 rounds of ``steps`` back-to-back calls (one synchronisation per round)."""
    rounds = []
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        rounds.append((time.perf_counter() - start) / steps)
    return median(rounds)


def kernels_per_step(step: Callable[[], Any], device: torch.device) -> int:
    """Device kernels (and copies) of one step on CUDA; top-level ops of one step on a CPU."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        synchronize(device)
    events = prof.events()
    if device.type == "cuda":
        return sum(1 for e in events if e.device_type == DeviceType.CUDA)
    return sum(1 for e in events if e.cpu_parent is None and e.name.startswith("aten::"))


def peak_memory(device: torch.device) -> float:
    """MiB: ``torch.cuda.max_memory_allocated`` on CUDA, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


@contextlib.contextmanager
def guarded(section: str, errors: dict[str, str]) -> Iterator[None]:
    """Record an exception of ``section`` in ``errors`` instead of ending the check."""
    try:
        yield
    except Exception as err:  # one failing section must not lose the others
        errors[section] = f"{type(err).__name__}: {err}"
        print(f"{section} FAILED: {errors[section]}", flush=True)
        traceback.print_exc()


class Check:
    """Settings and state of one run of the check."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.started = time.perf_counter()
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.device.type == "cuda"
        self.bf16 = self.cuda  # bf16 autocast is slower than float32 on CPUs without native bf16
        self.budget_s = args.budget_s
        self.errors: dict[str, str] = {}
        if args.quick:
            self.size, self.batches, self.steps = "XXS", [2, 4], 2
            self.variants = ["eager", "captured"]
            self.fidelity_steps, self.fidelity_tail, self.infer_batch = 20, 5, 4
        else:
            self.size, self.batches, self.steps = "S", [PAPER_BATCH, 1024], 20
            self.variants = [v for v in VARIANTS if not (args.no_compile and "compiled" in v)]
            self.fidelity_steps, self.fidelity_tail, self.infer_batch = 200, 50, 1024
        torch.manual_seed(0)
        self.initial = create_mae(self.size).state_dict()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def fresh(self) -> MoEMAE:
        """The same starting weights for every row."""
        mae = create_mae(self.size)
        mae.load_state_dict(self.initial)
        return mae.to(self.device).train()

    def release(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def train_row(self, batch: int, variant: str) -> dict[str, Any]:
        """Speed, memory, first-step seconds and kernels of one (batch, variant) setting."""
        row: dict[str, Any] = dict(size=self.size, batch=batch, variant=variant,
                                   precision="bf16-mixed" if self.bf16 else "32-true")  # fmt: skip
        if self.elapsed() > self.budget_s:
            row["skipped"] = f"time budget of {self.budget_s:.0f} s spent"
            return row
        self.release()
        data = inputs(batch, self.device)
        mae = self.fresh()
        graph: GraphedTrainStep | None = None
        if variant == "eager":
            step: Callable[[], Any] = our_step(mae, data, bf16=self.bf16)
            warm = 1
        else:
            step, graph = graphed_step(mae, data, self.bf16, compiled="compiled" in variant)
            warm = graph.warmup_steps + 1  # eager warm-up, then capture and the first replay
        start = time.perf_counter()
        for _ in range(warm):
            step()
        synchronize(self.device)
        row["first_step_s"] = time.perf_counter() - start
        seconds = seconds_per_step(step, self.device, self.steps)
        row.update(steps_per_s=1 / seconds, images_per_s=batch / seconds,
                   peak_memory_mib=peak_memory(self.device),
                   kernels_per_step=kernels_per_step(step, self.device))  # fmt: skip
        if graph is not None:
            row["graph_captured"] = graph.graph is not None
        print(f"train {self.size} batch {batch:5} {variant:18} {1 / seconds:8.2f} steps/s "
              f"{batch / seconds:9.0f} img/s peak {row['peak_memory_mib']:7.0f} MiB "
              f"first {row['first_step_s']:.1f} s, {row['kernels_per_step']} kernels/step",
              flush=True)  # fmt: skip
        return row

    def authors_row(self, batch: int) -> dict[str, Any] | None:
        """The authors' ``train_epoch`` step at ``batch`` (their AMP: fp16 on CUDA)."""
        modules = authors_modules()
        if modules is None:
            return None
        self.release()
        model = build_authors_mae(modules[0], self.size)
        step = authors_step(modules[1], model.to(self.device).train(), inputs(batch, self.device))
        step()
        seconds = seconds_per_step(step, self.device, max(2, self.steps // 2))
        row = dict(batch=batch, precision="fp16-amp" if self.cuda else "32-true",
                   steps_per_s=1 / seconds, images_per_s=batch / seconds,
                   peak_memory_mib=peak_memory(self.device))  # fmt: skip
        print(f"authors {self.size} batch {batch:5} {1 / seconds:8.2f} steps/s "
              f"{batch / seconds:9.0f} img/s", flush=True)  # fmt: skip
        return row

    def fidelity(self) -> dict[str, Any]:
        """Mean loss of the last steps: captured vs eager step, same weights, same batches."""
        batch = self.batches[0]
        pool = [inputs(batch, self.device, seed=i) for i in range(8)]
        means = {}
        for name, capture in (("eager", False), ("captured", self.cuda)):
            self.release()
            torch.manual_seed(1)
            mae = self.fresh()
            _, graph = graphed_step(mae, pool[0], self.bf16, compiled=False)
            graph.capture = capture
            losses = []
            for i in range(self.fidelity_steps):
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                    out = graph(pool[i % len(pool)], (i, 0, i))
                losses.append(out["loss"].clone())
            tail = torch.stack(losses[-self.fidelity_tail :]).float().mean().item()
            means[name] = tail
        rel = abs(means["captured"] - means["eager"]) / abs(means["eager"])
        print(f"fidelity: last-{self.fidelity_tail} mean loss eager {means['eager']:.4f}, "
              f"captured {means['captured']:.4f} ({rel:.2%})", flush=True)  # fmt: skip
        return dict(steps=self.fidelity_steps, tail=self.fidelity_tail, batch=batch,
                    mean_loss=means, relative_difference=rel, within_2_percent=rel <= 0.02,
                    captured=self.cuda)  # fmt: skip

    def inference_row(self) -> dict[str, Any]:
        """Encoder inference img/s (eval mode, no_grad)."""
        self.release()
        encoder = create_mae(self.size).encoder.to(self.device).eval()
        data = inputs(self.infer_batch, self.device)

        def step() -> None:
            with (
                torch.no_grad(),
                torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16),
            ):
                encoder.forward_features(
                    data["image"], lat=data["lat"], lon=data["lon"], time=data["time"]
                )

        step()
        seconds = seconds_per_step(step, self.device, max(3, self.steps // 2))
        print(f"inference {self.size} batch {self.infer_batch} "
              f"{self.infer_batch / seconds:9.0f} img/s", flush=True)  # fmt: skip
        return dict(size=self.size, batch=self.infer_batch,
                    precision="bf16" if self.bf16 else "fp32",
                    images_per_s=self.infer_batch / seconds)  # fmt: skip


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


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown page."""
    env = result["env"]
    lines = [
        "# GPU check",
        "",
        f"Device: {env['device']}; torch {env['torch']}; mode: {result['mode']}; "
        f"wall time of the check: {result['elapsed_s']:.0f} s.",
        "",
        "| size | batch | variant | precision | steps/s | img/s | peak memory (MiB) | "
        "first step (s) | kernels/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["train"]:
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or r.get("error")
            lines.append(f"| {r['size']} | {r['batch']} | {r['variant']} | {why} ||||||")
            continue
        lines.append(
            f"| {r['size']} | {r['batch']} | {r['variant']} | {r['precision']} | "
            f"{r['steps_per_s']:.2f} | {r['images_per_s']:.0f} | {r['peak_memory_mib']:.0f} | "
            f"{r['first_step_s']:.1f} | {r['kernels_per_step']} |"
        )
    lines.append("")
    authors = result.get("authors")
    if authors:
        ratio = result.get("ratio_to_authors")
        lines.append(
            f"- Authors' training loop (batch {authors['batch']}, {authors['precision']}): "
            f"{authors['images_per_s']:.0f} img/s; our fastest batch-{authors['batch']} row: "
            f"{_num(ratio, '.1f')}x"
        )
    fid = result.get("fidelity")
    if fid:
        lines.append(
            f"- Captured vs eager, {fid['steps']} steps at batch {fid['batch']}: mean loss of the "
            f"last {fid['tail']} {fid['mean_loss']['captured']:.4f} vs "
            f"{fid['mean_loss']['eager']:.4f} ({fid['relative_difference']:.2%}; within 2 %: "
            f"{fid['within_2_percent']})"
        )
    inf = result.get("inference")
    if inf:
        lines.append(
            f"- Encoder inference ({inf['size']}, batch {inf['batch']}, {inf['precision']}): "
            f"{inf['images_per_s']:.0f} img/s"
        )
    packed = result.get("packed_samples_per_s")
    lines.append(
        f"- Packed loader: {f'{packed:.0f} samples/s' if packed else 'not measured'} "
        f"({result.get('packed_source')})"
    )
    proj = result.get("projection")
    if proj:
        lines.append(
            f"- Paper run ({PAPER_EPOCHS} epochs x {PAPER_PATCHES:,} patches, batch {PAPER_BATCH}: "
            f"{PAPER_STEPS:,} steps) at the fastest batch-{proj['batch']} row ({proj['variant']}, "
            f"{proj['steps_per_s']:.2f} steps/s): {proj['hours']:.1f} h"
        )
    for section, error in result["errors"].items():
        lines.append(f"- {section} failed: {error}")
    lines += ["", f"Peak memory: {result['peak_memory_kind']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the check; write ``gpu_check.json`` and ``gpu_check.md`` under ``--out``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny CPU-friendly settings (CI)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled rows")
    parser.add_argument(
        "--budget-s", type=float, default=240.0, help="start no train row after this many seconds"
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: docs/benchmarks, not with --quick)"
    )
    args = parser.parse_args(argv)
    check = Check(args)
    if check.cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif args.quick:
        torch.set_num_threads(1)  # tiny batches: threads only add contention on a shared CI box
    errors = check.errors

    train = []
    for batch in check.batches:
        for variant in check.variants:
            with guarded(f"train batch {batch} {variant}", errors):
                train.append(check.train_row(batch, variant))
                continue
            train.append(dict(size=check.size, batch=batch, variant=variant,
                              error=errors[f"train batch {batch} {variant}"]))  # fmt: skip
    result: dict[str, Any] = dict(mode="quick" if args.quick else "full",
                                  env=environment(check.device), train=train, errors=errors,
                                  peak_memory_kind="torch.cuda.max_memory_allocated"
                                  if check.cuda else "process peak RSS")  # fmt: skip
    timed = [r for r in train if "steps_per_s" in r and r["batch"] == check.batches[0]]
    with guarded("authors", errors):
        result["authors"] = check.authors_row(check.batches[0])
        if result["authors"] and timed:
            best = max(r["images_per_s"] for r in timed)
            result["ratio_to_authors"] = best / result["authors"]["images_per_s"]
    with guarded("fidelity", errors):
        result["fidelity"] = check.fidelity()
    with guarded("inference", errors):
        result["inference"] = check.inference_row()
    with guarded("packed loader", errors):
        packed, source = packed_loader_rate(timeout_s=60)
        result.update(packed_samples_per_s=packed, packed_source=source)
    if timed:
        best_row = max(timed, key=lambda r: r["steps_per_s"])
        result["projection"] = dict(steps=PAPER_STEPS, batch=best_row["batch"],
                                    variant=best_row["variant"],
                                    steps_per_s=best_row["steps_per_s"],
                                    hours=PAPER_STEPS / best_row["steps_per_s"] / 3600)  # fmt: skip
        print(f"projected paper run: {result['projection']['hours']:.2f} h")
    result["elapsed_s"] = check.elapsed()
    print(f"wall time of the check: {result['elapsed_s']:.0f} s")
    out = args.out or (None if args.quick else str(REPO / "docs" / "benchmarks"))
    if out is not None:
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        (path / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
        (path / "gpu_check.md").write_text(markdown(result))
        print(f"wrote {path / 'gpu_check.json'} and {path / 'gpu_check.md'}")
    if not timed:
        raise SystemExit("no training speed was measured")
    return result


if __name__ == "__main__":
    main()
