"""Shared by the benchmarks: inputs, interleaved timing, and the authors' reference code.

The authors' code (MIT, ``../shared/reference/geo-moe-mae``) is imported at run time from that
folder, never copied: ``from models.moe_mae import build_model, MOEMAE``.
"""

from __future__ import annotations

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

from torchgeo_moemae.models import encode_metadata

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

    Their gate adds noise at inference too (SPEC section 6); their noise ops still run, so their
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
