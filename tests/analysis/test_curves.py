"""Training curves: Lightning CSV logs are read and plotted, also from the command line."""

from __future__ import annotations

import os
from pathlib import Path

from torchgeo_moemae.analysis import plot_training_curves, read_lightning_logs
from torchgeo_moemae.cli import main


def test_curves_csv(tmp_path: Path) -> None:
    log = tmp_path / "lightning_logs" / "version_0"
    log.mkdir(parents=True)
    rows = ["epoch,step,lr,train_loss_step,train_loss_moe_step,val_loss,train_loss_epoch"]
    for s in range(10):
        rows.append(f"0,{s},{1e-4 * s},{1 / (s + 1)},{0.01 / (s + 1)},,")
    rows.append("0,9,,,,0.5,0.6")
    (log / "metrics.csv").write_text("\n".join(rows) + "\n")
    series = read_lightning_logs(tmp_path)
    assert len(series["lr"]) == 10 and series["train_loss_epoch"] == [(0.0, 0.6)]
    fig = plot_training_curves(tmp_path)
    assert len(fig.axes) == 3
    out = tmp_path / "c.png"
    assert main(["analyze", "curves", "--logs", str(log), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_curves_join_the_versions_of_a_resumed_run(tmp_path: Path) -> None:
    """Only the newest version_N was read, and a one-point series was invisible."""
    header = "epoch,step,lr,train_loss_step,val_loss"
    launches = {
        "version_0": [f"0,{s},{1e-4 * s},{1 / (s + 1)}," for s in range(6)],
        # resumed from step 4: steps 4 and 5 logged again, with the newer values kept
        "version_1": [f"0,{s},{1e-4 * s},{2 / (s + 1)}," for s in range(4, 9)] + ["0,8,,,0.5"],
    }
    for i, (version, rows) in enumerate(launches.items()):
        folder = tmp_path / "lightning_logs" / version
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
        os.utime(folder / "metrics.csv", (1e9 - i, 1e9 - i))  # version_1 is not the newest file
    series = read_lightning_logs(tmp_path)
    assert [x for x, _ in series["train_loss_step"]] == list(range(9))
    assert dict(series["train_loss_step"])[5] == 2 / 6  # the resumed launch wins
    assert series["val_loss"] == [(8.0, 0.5)]
    fig = plot_training_curves(series)
    lone = [line for ax in fig.axes for line in ax.lines if line.get_label() == "val_loss"]
    assert len(lone) == 1 and lone[0].get_marker() == "o"
