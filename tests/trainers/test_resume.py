"""A pre-training run interrupted mid-epoch and resumed reaches the weights of an uninterrupted run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torchgeo.main import main as torchgeo_main

from tests.interrupt import sigint_after
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule, PackedDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls, pack_dataset
from torchgeo_moemae.trainers import FineTuneTask, LinearProbeTask, MoEMAEPretrainTask

REPO = Path(__file__).resolve().parents[2]

#: 42 train patches in batches of 8: 5 batches per epoch (the incomplete one dropped), so a
#: run of 8 steps interrupted after 3 resumes mid-epoch and then crosses an epoch boundary
BATCH, STOP, TOTAL = 8, 3, 8


class Killed(Exception):
    """Stands for a killed process."""


class Interrupt(Callback):
    """Records a fingerprint (per-image sums) of every training batch; interrupts at ``stop``:
    ``kill`` raises before the next step (the last checkpoint is the one of step ``stop``),
    ``stop`` asks the Trainer to stop, as ``max_steps`` does (the run ends its epoch early)."""

    def __init__(self, how: str | None) -> None:
        self.how = how
        self.batches: list[list[float]] = []

    def on_train_batch_start(
        self, trainer: Trainer, module: LightningModule, batch: Any, i: int
    ) -> None:
        if self.how == "kill" and trainer.global_step == STOP:
            raise Killed
        self.batches.append(batch["image"].flatten(1).sum(1).tolist())

    def on_train_batch_end(
        self, trainer: Trainer, module: LightningModule, out: Any, batch: Any, i: int
    ) -> None:
        if self.how == "stop" and trainer.global_step == STOP:
            trainer.should_stop = True


@pytest.fixture(scope="module")
def ben_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_bigearthnet_ls(tmp_path_factory.mktemp("resume") / "data", num_patches=60)


def tiff(root: Path, tmp: Path) -> LightningDataModule:
    return BigEarthNetLSDataModule(root=root, batch_size=BATCH, augment=True)


def packed(root: Path, tmp: Path) -> LightningDataModule:
    for split in ("train", "val"):
        pack_dataset(
            "bigearthnet_ls", tmp / "packs" / split, split=split, root=root, progress=False
        )
    return PackedDataModule(root=tmp / "packs", batch_size=BATCH, augment=True)


def fit(
    make_trainer: Callable[..., Trainer],
    datamodule: LightningDataModule,
    root: Path,
    how: str | None = None,
    ckpt_path: Path | None = None,
) -> tuple[dict[str, torch.Tensor], list[list[float]], Trainer]:
    """Train an XXS model for :data:`TOTAL` steps (from ``ckpt_path``), interrupted ``how``;
    the weights, the batches seen and the trainer."""
    torch.manual_seed(0)
    interrupt = Interrupt(how)
    every_step = ModelCheckpoint(dirpath=root, save_top_k=0, save_last=True, every_n_train_steps=1)
    trainer = make_trainer(
        root, max_steps=TOTAL, enable_checkpointing=True, callbacks=[interrupt, every_step]
    )
    task = MoEMAEPretrainTask(model="XXS", log_figures=False)
    with contextlib.suppress(Killed):
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    return task.state_dict(), interrupt.batches, trainer


@pytest.mark.parametrize(
    ("make_datamodule", "how"),
    [(tiff, "kill"), (packed, "kill"), (packed, "stop")],
    ids=["tiff-kill", "packed-kill", "packed-stop"],
)
def test_resumed_run_matches_uninterrupted(
    make_datamodule: Callable[[Path, Path], LightningDataModule],
    how: str,
    ben_synthetic: Path,
    tmp_path: Path,
    make_trainer: Callable[..., Trainer],
    recwarn: pytest.WarningsRecorder,
) -> None:
    whole, whole_seen, _ = fit(
        make_trainer, make_datamodule(ben_synthetic, tmp_path), tmp_path / "a"
    )
    _, first_seen, _ = fit(
        make_trainer, make_datamodule(ben_synthetic, tmp_path), tmp_path / "b", how
    )
    assert len(first_seen) == STOP
    resumed, rest_seen, trainer = fit(
        make_trainer,
        make_datamodule(ben_synthetic, tmp_path),
        tmp_path / "b",
        ckpt_path=tmp_path / "b" / "last.ckpt",
    )
    assert trainer.global_step == TOTAL
    # the rest of the interrupted epoch, then the next one, in the uninterrupted run's order
    assert first_seen + rest_seen == whole_seen
    assert not [w for w in recwarn if "not resumable" in str(w.message)]
    for name, value in whole.items():
        assert torch.equal(resumed[name], value), name


def test_lightning_can_swap_the_sampler(
    ben_synthetic: Path, tmp_path: Path, make_trainer: Callable[..., Trainer]
) -> None:
    """``overfit_batches`` rebuilds the train loader with Lightning's own sampler: the loader is
    then a plain DataLoader (not resumable) instead of failing."""
    trainer = make_trainer(tmp_path, max_steps=2, overfit_batches=1)
    datamodule = tiff(ben_synthetic, tmp_path)
    trainer.fit(MoEMAEPretrainTask(model="XXS", log_figures=False), datamodule=datamodule)
    assert trainer.global_step == 2


# --------------------------------------------------------------------------- the CLI path
#: shipped configs by family (the DDP config is the GeoTIFF one on several devices; the
#: EuroSAT-L configs differ from these only in their datamodule)
FAMILIES = {
    "geotiff": "configs/pretrain_bigearthnet_ls.yaml",
    "packed": "configs/pretrain_bigearthnet_ls_packed.yaml",
    "finetune": "configs/finetune_bigearthnet_ls.yaml",
    "linear_probe": "configs/linear_probe_bigearthnet_ls.yaml",
}
#: 5 steps per epoch, 2 epochs; Ctrl-C during step 9 (epoch 1): resumed from the checkpoint of
#: step 6 (mid-epoch, the pre-training configs' every-N-steps one) or of epoch 0's end
EPOCHS, SIGINT_AT, EVERY_N = 2, 9, 3


@pytest.fixture(scope="module")
def ben_packs(ben_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    packs = tmp_path_factory.mktemp("packs")
    for split in ("train", "val"):
        pack_dataset(
            "bigearthnet_ls", packs / split, split=split, root=ben_synthetic, progress=False
        )
    return packs


def small_config(name: str, out: Path) -> Path:
    """The shipped config with step checkpoints every :data:`EVERY_N` steps (instead of 1000)."""
    config = yaml.safe_load((REPO / name).read_text())
    for callback in config["trainer"]["callbacks"]:
        if callback["init_args"].get("every_n_train_steps"):
            callback["init_args"]["every_n_train_steps"] = EVERY_N
    out.write_text(yaml.safe_dump(config))
    return out


def last_checkpoint(run: Path) -> dict[str, Any]:
    (path,) = run.glob("runs/*/checkpoints/last.ckpt")
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_config_resumes_after_sigint_to_the_uninterrupted_weights(
    family: str,
    ben_synthetic: Path,
    ben_packs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``torchgeo fit --config C``, Ctrl-C mid-epoch, ``--ckpt_path last``: the weights of an
    uninterrupted run, bit for bit, for every family of shipped config."""
    config = small_config(FAMILIES[family], tmp_path / "config.yaml")
    text = config.read_text()
    task = next(
        t for t in (MoEMAEPretrainTask, FineTuneTask, LinearProbeTask) if t.__name__ in text
    )
    args = [
        "fit",
        f"--config={config}",
        f"--data.init_args.root={ben_packs if family == 'packed' else ben_synthetic}",
        f"--data.init_args.batch_size={BATCH}",
        "--data.init_args.num_workers=0",
        "--model.init_args.model=XXS",
        "--trainer.accelerator=cpu",
        "--trainer.precision=32-true",
        f"--trainer.max_epochs={EPOCHS}",
        "--trainer.enable_progress_bar=false",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
    ]
    if "pin_memory" in text:
        args += ["--data.init_args.pin_memory=false", "--data.init_args.download=false"]
    if "on_device" in text:
        args.append("--data.init_args.on_device=false")
    if "weights: MoEMAELandsat_Weights" in text:  # offline: random initialisation
        args.append("--model.init_args.weights=null")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    monkeypatch.chdir(whole)
    torchgeo_main(args)
    target = f"{task.__module__}:{task.__name__}.training_step"
    code, err = sigint_after(
        target, args, tmp_path / "ready", calls=SIGINT_AT, entry="torchgeo.main:main", cwd=parts
    )
    assert code == 1 and "KeyboardInterrupt" in err, err
    interrupted = last_checkpoint(parts)["global_step"]
    assert 0 < interrupted < SIGINT_AT - 1
    monkeypatch.chdir(parts)
    torchgeo_main([*args, "--ckpt_path=last"])
    expected, resumed = last_checkpoint(whole), last_checkpoint(parts)
    assert resumed["global_step"] == expected["global_step"] == EPOCHS * 5
    for name, value in expected["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name
