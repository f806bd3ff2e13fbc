"""Every shipped config runs through ``torchgeo fit|validate|test|predict`` on small fake data (CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning.pytorch import LightningModule
from torchgeo.main import main as torchgeo_main

from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls, pack_dataset
from torchgeo_moemae.trainers import FineTuneTask, LinearProbeTask, MoEMAEPretrainTask

REPO = Path(__file__).resolve().parents[2]
#: predict-only configs, run in their own tests (tests/scene/test_torchgeo_cli.py)
PREDICT_ONLY = {"embed_scenes.yaml"}
CONFIGS = [
    *sorted(p for p in (REPO / "configs").glob("*.yaml") if p.name not in PREDICT_ONLY),
    REPO / "examples" / "quickstart.yaml",
    REPO / "torchgeo_moemae" / "configs" / "quickstart.yaml",
]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fake BigEarthNet-L (via the package's generator), its packs, and EuroSAT-L (the tests'
    generator)."""
    ben = make_synthetic_bigearthnet_ls(tmp_path_factory.mktemp("ben") / "data", num_patches=24)
    path = REPO / "tests" / "data" / "eurosat_ls" / "data.py"
    spec = importlib.util.spec_from_file_location("fake_eurosat_ls_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    eurosat = tmp_path_factory.mktemp("eurosat") / "data"
    module.make_eurosat_ls(eurosat, archive=False)
    packs = tmp_path_factory.mktemp("packs")
    for split in ("train", "val", "test"):
        pack_dataset("bigearthnet_ls", packs / split, split=split, root=ben, progress=False)
    return {
        "BigEarthNetLSDataModule": ben,
        "EuroSATLSDataModule": eurosat,
        "PackedDataModule": packs,
    }


def test_every_config_is_listed() -> None:
    names = {p.relative_to(REPO).as_posix() for p in CONFIGS}
    assert {"configs/pretrain_bigearthnet_ls.yaml", "examples/quickstart.yaml"} <= names
    assert all(p.is_file() for p in CONFIGS)


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_torchgeo_cli_runs_config(
    config: Path,
    command: str,
    roots: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = config.read_text()
    datamodule = next(name for name in roots if name in text)
    monkeypatch.chdir(tmp_path)
    args = [
        command,
        "--config",
        str(config),
        f"--data.init_args.root={roots[datamodule]}",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        "--trainer.fast_dev_run=1",
        "--trainer.enable_progress_bar=false",
    ]
    if "pin_memory" in text:
        args.append("--data.init_args.pin_memory=false")
    if "MoEMAEPretrainTask" in text:
        args.append("--model.init_args.log_figures=false")
    if "weights: MoEMAELandsat_Weights" in text:  # offline: random initialisation
        args.append("--model.init_args.weights=null")
    # fast_dev_run logs and saves nothing: record the steps that ran instead.
    task = next(
        t for t in (MoEMAEPretrainTask, FineTuneTask, LinearProbeTask) if t.__name__ in text
    )
    step = {"fit": "training", "validate": "validation"}.get(command, command) + "_step"
    calls: list[int] = []
    original = getattr(task, step)

    def spy(self: LightningModule, batch: Any, batch_idx: int, *args: Any) -> Any:
        calls.append(batch["image"].shape[0])
        return original(self, batch, batch_idx, *args)

    monkeypatch.setattr(task, step, spy)
    torchgeo_main(args)
    assert calls == [2]


def test_val_loss_checkpoint_waits_for_validation(
    roots: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recwarn: pytest.WarningsRecorder,
) -> None:
    """A run without validation (``limit_val_batches=0``) does not make the best-``val_loss``
    checkpoint warn at each train epoch end with every logged metric name."""
    monkeypatch.chdir(tmp_path)
    config = REPO / "torchgeo_moemae" / "configs" / "quickstart.yaml"
    args = [
        "fit",
        "--config",
        str(config),
        f"--data.init_args.root={roots['BigEarthNetLSDataModule']}",
        "--data.init_args.batch_size=2",
        "--trainer.accelerator=cpu",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        "--model.init_args.log_figures=false",
    ]
    torchgeo_main(args)
    assert not [w for w in recwarn if "could not find the monitored key" in str(w.message)]
    # and every shipped config ranks by val_loss only after validation
    for path in CONFIGS:
        for callback in yaml.safe_load(path.read_text())["trainer"].get("callbacks", []):
            if callback["init_args"].get("monitor") == "val_loss":
                assert callback["init_args"]["save_on_train_epoch_end"] is False, path


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_config_keeps_a_last_checkpoint_for_resume(config: Path) -> None:
    """``--ckpt_path last`` finds a checkpoint from the first epoch's end on, whatever the
    step interval, and every ``last.ckpt`` writer shares the one file (no ``last-v1.ckpt``)."""
    callbacks = [c["init_args"] for c in yaml.safe_load(config.read_text())["trainer"]["callbacks"]]
    last = [c for c in callbacks if c.get("save_last")]
    assert any(c.get("save_on_train_epoch_end") and "every_n_train_steps" not in c for c in last)
    assert all(c.get("enable_version_counter") is False for c in last)
    assert len({c["dirpath"] for c in last}) == 1
