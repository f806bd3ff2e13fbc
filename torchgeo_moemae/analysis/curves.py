"""Training curves from Lightning logs: CSVLogger ``metrics.csv`` (always) or TensorBoard events
(when ``tensorboard`` is installed).

Panels (as the paper's Fig. 2): reconstruction losses (every logged key containing ``loss`` except
the MoE ones), the MoE balancing loss (keys containing ``moe``), and the learning rate (keys
starting with ``lr``). Epoch-level series (``*_epoch``) are drawn against the epoch, step-level
ones against the step. A resumed run logs into one ``version_N`` folder per launch: all are joined
(a later launch's value wins at a step both logged), and a series with a single point is drawn as
a marker.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["find_log_files", "plot_training_curves", "read_lightning_logs"]

Series = dict[str, list[tuple[float, float]]]


def _launch_order(path: Path) -> tuple[int, int]:
    """Sort key of a log file: its ``version_N`` folder number, then its modification time."""
    match = next((re.fullmatch(r"version_(\d+)", p.name) for p in path.parents), None)
    return (int(match.group(1)) if match else -1, path.stat().st_mtime_ns)


def find_log_files(path: str | Path) -> list[Path]:
    """The log files of a run, oldest launch first: ``path`` itself, else every ``metrics.csv``
    below it (or, without any, every ``events.out.tfevents.*``), ordered by ``version_N``."""
    path = Path(path)
    if path.is_file():
        return [path]
    candidates = list(path.rglob("metrics.csv")) or list(path.rglob("events.out.tfevents.*"))
    if not candidates:
        raise FileNotFoundError(
            f"no Lightning log under {path}: expected a CSVLogger metrics.csv or TensorBoard events"
        )
    return sorted(candidates, key=_launch_order)


def _read_csv(path: Path) -> Series:
    series: Series = defaultdict(list)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step") or ""
            epoch = row.get("epoch") or ""
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                try:
                    v = float(value)
                except ValueError:
                    continue
                use_epoch = key.endswith("_epoch") and epoch != ""
                x = float(epoch) if use_epoch else float(step or "nan")
                if not math.isnan(x):
                    series[key].append((x, v))
    return dict(series)


def _read_tensorboard(path: Path) -> Series:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError(
            "reading TensorBoard event files needs `pip install tensorboard`; "
            "or log with lightning's CSVLogger and pass its metrics.csv"
        ) from err
    acc = EventAccumulator(str(path))
    acc.Reload()
    return {
        tag: [(float(e.step), float(e.value)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def read_lightning_logs(path: str | Path) -> Series:
    """``{metric: [(step or epoch, value), ...]}`` sorted by x, from a log file or a log directory
    (all its ``version_N`` logs joined; at an x logged twice, the later launch's value)."""
    joined: dict[str, dict[float, float]] = defaultdict(dict)
    for file in find_log_files(path):
        series = _read_csv(file) if file.suffix == ".csv" else _read_tensorboard(file)
        for key, points in series.items():
            joined[key].update(points)
    return {key: sorted(points.items()) for key, points in joined.items()}


def plot_training_curves(path: str | Path | Series, **fig_kwargs: Any) -> Figure:
    """Loss, MoE-loss and learning-rate panels from Lightning logs (or already read series)."""
    series = path if isinstance(path, dict) else read_lightning_logs(path)
    groups = {
        "reconstruction losses": [k for k in series if "loss" in k and "moe" not in k],
        "MoE balancing loss": [k for k in series if "moe" in k],
        "learning rate": [k for k in series if k.startswith("lr") or k.endswith("/lr")],
    }
    groups = {name: keys for name, keys in groups.items() if keys}
    if not groups:
        raise ValueError(
            f"no loss or learning-rate series in the log (keys: {sorted(series)[:10]})"
        )
    fig_kwargs.setdefault("figsize", (5 * len(groups), 3.8))
    fig = Figure(**fig_kwargs)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (name, keys) in zip(axes, groups.items(), strict=True):
        for k in sorted(keys):
            pts = sorted(series[k])
            marker = "o" if len(pts) == 1 else None  # a lone point has no line to draw
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, lw=1.2, marker=marker)
        ax.set_title(name)
        ax.set_xlabel("epoch" if all(k.endswith("_epoch") for k in keys) else "step")
        if name != "learning rate" and all(p[1] > 0 for k in keys for p in series[k]):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
