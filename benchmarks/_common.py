"""Shared by the benchmarks: inputs, interleaved timing, and the authors' reference code.

The authors' code (MIT, ``../shared/reference/geo-moe-mae``) is imported at run time from that
folder, never copied: ``from models.moe_mae import build_model, MOEMAE``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from torchgeo_moemae.models import SwiGLUMoE
from torchgeo_moemae.models.metadata import encode_metadata

REPO = Path(__file__).resolve().parents[1]
#: The authors' code; ``MOEMAE_REFERENCE`` overrides the location.
REFERENCE = Path(
    os.environ.get("MOEMAE_REFERENCE", REPO.parent / "shared" / "reference" / "geo-moe-mae")
)


def authors_modules() -> tuple[ModuleType, ModuleType] | None:
    """``(models.moe_mae, pretrain_mae)`` of the authors' code, or None (with a message) if absent."""
    if not (REFERENCE / "models" / "moe_mae.py").is_file():
        print(
            f"authors' reference code not found at {REFERENCE} (set MOEMAE_REFERENCE): "
            "timing this package only, no ratios",
            file=sys.stderr,
        )
        return None
    sys.path.insert(0, str(REFERENCE))
    import pretrain_mae
    from models import moe_mae

    return moe_mae, pretrain_mae


def build_authors_mae(moe_mae: ModuleType, size: str) -> nn.Module:
    """The authors' MAE of ``size`` for 7-band 40 px patches of 4 px (their Landsat setting)."""
    encoder = moe_mae.build_model(size, img_size=40, patch_size=4, in_chans=7)
    return moe_mae.MOEMAE(encoder)


def silence_authors_gate_noise(model: nn.Module) -> None:
    """Make the authors' gate noise negligible (softplus(-30) ~ 1e-13): deterministic routing.

    Their gate adds noise at inference too (docs/user_guide/fidelity.rst); their noise ops still run, so their
    cost is unchanged.
    """
    for module in model.modules():
        if type(module).__name__ == "NoisyTopKGate" and hasattr(module, "Wnoise"):
            with torch.no_grad():
                module.Wnoise.weight.zero_()
                module.Wnoise.bias.fill_(-30.0)


def inputs(batch: int, device: torch.device, seed: int = 0) -> dict[str, Tensor]:
    """A normalised Landsat-like batch: ``image (B, 7, 40, 40)``, ``lat``, ``lon``, ``time`` ``(B,)``."""
    gen = torch.Generator().manual_seed(seed)
    data = dict(
        image=torch.randn(batch, 7, 40, 40, generator=gen),
        lat=torch.rand(batch, generator=gen) * 30 + 40,
        lon=torch.rand(batch, generator=gen) * 30 - 10,
        time=1.5e9 + torch.rand(batch, generator=gen, dtype=torch.float64) * 3e7,
    )
    return {k: v.to(device) for k, v in data.items()}


def authors_metadata(data: dict[str, Tensor]) -> dict[str, Tensor]:
    """The same metadata as the authors' ``meta_week``/``meta_hour``/``meta_lat``/``meta_lon`` ``(B, 2)``."""
    meta = encode_metadata(data["lat"], data["lon"], data["time"], data["image"].shape[0])
    meta = meta.to(data["image"].device)
    keys = ("meta_week", "meta_hour", "meta_lat", "meta_lon")
    return {key: meta[:, i] for i, key in enumerate(keys)}


def benchmark_parser(description: str, rounds: int, unit: str) -> argparse.ArgumentParser:
    """The arguments ``bench_model.py`` and ``bench_train.py`` share (see :func:`parse_arguments`).

    Args:
        description: the script's docstring.
        rounds: default number of timed ``unit``s per variant.
        unit: what one round times (``"calls"``, ``"steps"``).
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=("S", "XS", "XXS"), default="S")
    parser.add_argument("--batch", type=int, default=128, help="the paper's batch: 128")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"timed {unit} per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also report the time in matmul/attention kernels alone (CPU) and the ratio it bounds",
    )
    parser.add_argument("--quick", action="store_true", help="XXS, batch 16, 2 rounds (CI)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--json", default=None, help="write the results to this file")
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, set torch's CPU threads and apply ``--quick``."""
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.size, args.batch, args.rounds, args.warmup = "XXS", 16, 2, 1
    return args


def set_dispatch(model: nn.Module, dispatch: str) -> None:
    """Switch every MoE layer of ``model`` to ``dispatch`` (``auto``, ``routed``, ``fused``, ``loop``)."""
    for module in model.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = dispatch  # type: ignore[assignment]


def synchronize(device: torch.device) -> None:
    """Wait for the device (timings on CUDA are otherwise launch times)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    steps: dict[str, Callable[[], Any]], device: torch.device, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each step, timed round-robin so that load changes hit all alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def first_call_seconds(
    steps: dict[str, Callable[[], Any]], device: torch.device, compiled: str = "compiled"
) -> dict[str, float]:
    """Seconds of the first call of each step whose name contains ``compiled``: its compilation.

    Reported apart from the steady-state timings (which follow warm-up calls).
    """
    seconds = {}
    for name, step in steps.items():
        if compiled in name:
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            seconds[name] = time.perf_counter() - start
    return seconds


#: The matmul, attention and convolution kernels (forward and backward) that any implementation of
#: the model runs, whatever code surrounds them.
DENSE_KERNELS = frozenset(
    {
        "aten::addmm",
        "aten::mm",
        "aten::bmm",
        "aten::baddbmm",
        "aten::_scaled_dot_product_flash_attention_for_cpu",
        "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
        "aten::mkldnn_convolution",
        "aten::convolution_backward",
    }
)


def dense_kernel_seconds(step: Callable[[], Any], rounds: int = 3) -> float:
    """Seconds one call of ``step`` spends inside :data:`DENSE_KERNELS` (CPU; median of rounds).

    Their sum is a floor for the step: with the same kernels, an implementation that spent no
    time at all outside them (norms, activations, routing, copies, the optimiser) would still
    take this long, so ``authors' time / floor`` bounds the ratio any such rewrite can reach.
    To keep the floor low (generous to such a rewrite), glibc is first told to keep freed memory,
    so that the kernels do not page-fault on fresh output buffers (this stays on for the rest of
    the process: call it after the timings).
    """
    from torch.profiler import ProfilerActivity, profile

    retain_freed_memory()
    step()  # the heap grows to the step's peak once
    totals = []
    for _ in range(rounds):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        events = prof.key_averages()
        totals.append(sum(e.self_cpu_time_total for e in events if e.key in DENSE_KERNELS) / 1e6)
    return median(totals)


def retain_freed_memory() -> None:
    """Stop glibc's malloc from returning freed memory to the OS (mmap threshold 1 GiB, trim
    threshold 2 GiB), so re-allocated tensors do not page-fault; a no-op without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD


def kernel_floor(step: Callable[[], Any], authors_s: float | None) -> dict[str, float | None]:
    """Print and return :func:`dense_kernel_seconds` of ``step`` and the ratio to the authors'
    median time (``authors_s``) that it bounds."""
    floor = dense_kernel_seconds(step)
    bound = authors_s / floor if authors_s is not None else None
    shown = f": no rewrite on these kernels can exceed {bound:.2f}x the authors'" if bound else ""
    print(f"matmul/attention/conv kernels alone: {floor * 1e3:.1f} ms{shown}")
    return dict(dense_kernel_ms=floor * 1e3, max_ratio_to_authors=bound)


def median(values: list[float]) -> float:
    """Median (robust to a shared machine's hiccups)."""
    return statistics.median(values)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    return dict(
        torch=torch.__version__,
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        load_average=os.getloadavg(),
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        authors_code=str(REFERENCE) if REFERENCE.is_dir() else None,
    )
