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

REPO = Path(__file__).resolve().parents[2]


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


def _header_command(config: Path, verb: str) -> list[str]:
    """The ``torchgeo <verb> ...`` command a config's header gives, as arguments."""
    for line in config.read_text().splitlines():
        words = line.lstrip("# ").split()
        if words[:2] == ["torchgeo", verb]:
            return words[1:]
    raise AssertionError(f"{config} has no 'torchgeo {verb}' line in its header")


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["bigearthnet", "eurosat"])
def test_config_header_test_command_works(
    dataset: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The headers said ``--ckpt_path best``, which Lightning refuses in a new process
    ("ModelCheckpoint is not configured to save the best model"); their command now works."""
    import importlib.util

    from torchgeo.main import main as torchgeo_main

    config = REPO / "configs" / f"linear_probe_{dataset}_ls.yaml"
    if dataset == "eurosat":
        spec = importlib.util.spec_from_file_location(
            "fake_eurosat", REPO / "tests" / "data" / "eurosat_ls" / "data.py"
        )
        assert spec is not None and spec.loader is not None
        fake = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fake)
        root = tmp_path / "eurosat"
        fake.make_eurosat_ls(root, archive=False)
    (tmp_path / "configs").symlink_to(REPO / "configs")  # the headers' paths are repo-relative
    monkeypatch.chdir(tmp_path)
    overrides = [
        f"--data.init_args.root={root}",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        "--data.init_args.pin_memory=false",
        "--data.init_args.download=false",
        "--model.init_args.model=XXS",
        "--trainer.accelerator=cpu",
        "--trainer.precision=32-true",
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
    ]
    fit = [arg for arg in _header_command(config, "fit") if "weights" not in arg]
    torchgeo_main([*fit[: fit.index("--config") + 2], *overrides])
    test = _header_command(config, "test")
    ckpt = test[test.index("--ckpt_path") + 1]
    assert (tmp_path / ckpt).is_file() and (tmp_path / Path(ckpt).parent / "last.ckpt").is_file()
    torchgeo_main([*test, *overrides])
    with pytest.raises(ValueError, match="not configured to save the best model"):
        torchgeo_main([*test[: test.index("--ckpt_path")], "--ckpt_path", "best", *overrides])
