"""Training curves: Lightning CSV logs are read and plotted, also from the command line."""

from __future__ import annotations

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
