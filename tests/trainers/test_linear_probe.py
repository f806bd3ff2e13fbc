"""LinearProbeTask: frozen, eval-mode encoder; a linear head trains with torchgeo's Lightning loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.trainers import LinearProbeTask


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ben_lp")
    make_synthetic_bigearthnet_ls(path, num_patches=40, seed=1)
    return path


@pytest.mark.parametrize("pool", ["cls", "all"])
def test_fit_and_test(
    root: Path, pool: str, tmp_path: Path, make_trainer: Callable[..., Trainer]
) -> None:
    task = LinearProbeTask(model="XXS", pool=pool, num_classes=19, task="multilabel", lr=1e-2)
    before = {k: v.clone() for k, v in task.encoder.state_dict().items()}
    task.train()
    assert not task.encoder.training and task.head.training
    assert not any(p.requires_grad for p in task.encoder.parameters())
    dm = BigEarthNetLSDataModule(root=root, batch_size=8)
    trainer = make_trainer(tmp_path, max_epochs=1, limit_val_batches=None)
    head_before = task.head.weight.clone()
    trainer.fit(task, datamodule=dm)
    assert not torch.equal(head_before, task.head.weight)
    for k, v in task.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    res = trainer.test(task, datamodule=dm, verbose=False)[0]
    assert {"test_map_micro", "test_f1_macro", "test_loss"} <= set(res)


def test_multiclass_metrics_and_bad_args() -> None:
    task = LinearProbeTask(model="XXS", pool="avg", num_classes=10, task="multiclass")
    assert "overall_accuracy" in task.val_metrics and task.val_metrics.prefix == "val_"
    with pytest.raises(ValueError, match="pool"):
        LinearProbeTask(model="XXS", pool="mean")
