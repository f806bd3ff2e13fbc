"""Every shipped config that trains resumes after a real Ctrl-C to the weights of an uninterrupted
run, bit for bit on the CPU, through ``torchgeo fit --ckpt_path last`` (the CLI path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torchgeo.main import main as torchgeo_main

from tests.interrupt import sigint_after
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls, pack_dataset

from .test_configs import CONFIGS, REPO

#: one config per family, the task whose training step the interrupt follows, and its overrides
FAMILIES = {
    "pretrain": (
        "configs/pretrain_bigearthnet_ls.yaml",
        "torchgeo_moemae.trainers.pretrain:MoEMAEPretrainTask.training_step",
        ["--model.init_args.model=XXS", "--model.init_args.log_figures=false"],
    ),
    "pretrain-packed": (
        "configs/pretrain_bigearthnet_ls_packed.yaml",
        "torchgeo_moemae.trainers.pretrain:MoEMAEPretrainTask.training_step",
        ["--model.init_args.model=XXS", "--model.init_args.log_figures=false"],
    ),
    "finetune": (
        "configs/finetune_bigearthnet_ls.yaml",
        "torchgeo_moemae.trainers.classification:ClassificationBase.training_step",
        ["--model.init_args.model=XXS", "--model.init_args.weights=null"],
    ),
    "linear-probe": (
        "configs/linear_probe_bigearthnet_ls.yaml",
        "torchgeo_moemae.trainers.classification:ClassificationBase.training_step",
        ["--model.init_args.model=XXS"],
    ),
}
#: 2 epochs of 4 batches; the interrupt comes after the 5th step (mid second epoch)
EPOCHS, STOP = 2, 5


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ben = make_synthetic_bigearthnet_ls(tmp_path_factory.mktemp("ben") / "data", num_patches=24)
    packs = tmp_path_factory.mktemp("packs")
    for split in ("train", "val"):
        pack_dataset("bigearthnet_ls", packs / split, split=split, root=ben, progress=False)
    return {"tiff": ben, "packed": packs}


def _args(config: str, root: Path, extra: list[str]) -> list[str]:
    text = (REPO / config).read_text()
    args = [
        "fit",
        "--config",
        str(REPO / config),
        f"--data.init_args.root={root}",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        "--trainer.precision=32-true",
        f"--trainer.max_epochs={EPOCHS}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        *extra,
    ]
    if "pin_memory" in text:
        args.append("--data.init_args.pin_memory=false")
    if "download" in text:
        args.append("--data.init_args.download=false")
    if "on_device" in text:
        args.append("--data.init_args.on_device=false")
    return args


def _last(run: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """The global step and the weights of a run's last checkpoint."""
    (path,) = run.glob("runs/*/checkpoints/last.ckpt")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint["global_step"], checkpoint["state_dict"]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_resumed_run_is_the_uninterrupted_run(
    family: str, data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming at an epoch boundary (the last.ckpt before a Ctrl-C mid-epoch) drew other masks
    and gate noise: Lightning restores no loader there, and the random state lived in it."""
    config, step, extra = FAMILIES[family]
    args = _args(config, data["packed" if "packed" in family else "tiff"], extra)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    # the interrupted process computes as this one does (one thread: the same float sums)
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    monkeypatch.chdir(whole)
    torchgeo_main(args)
    code, err = sigint_after(
        step, args, tmp_path / "ready", calls=STOP, entry="torchgeo.main:main", cwd=parts
    )
    assert code != 0, err  # interrupted: Lightning ends with its graceful shutdown
    assert list(parts.glob("runs/*/checkpoints/last.ckpt")), err
    monkeypatch.chdir(parts)
    torchgeo_main([*args, "--ckpt_path", "last"])
    (steps, expected), (resumed_steps, resumed) = _last(whole), _last(parts)
    assert steps == resumed_steps > STOP and expected.keys() == resumed.keys()
    for name, value in expected.items():
        assert torch.equal(resumed[name], value), f"{family}: {name} differs"


def test_extending_a_finished_run_is_refused_in_a_sentence(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed with more epochs, a finished run trained on at learning rate 0."""
    config, _, extra = FAMILIES["pretrain"]
    args = _args(config, data["tiff"], extra)
    monkeypatch.chdir(tmp_path)
    torchgeo_main([*args, "--trainer.max_epochs=1"])
    with pytest.raises(ValueError, match=r"schedule spans 4 optimiser steps but this run has 8"):
        torchgeo_main([*args, "--ckpt_path", "last"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_training_config_saves_last_at_each_epoch_end(config: Path) -> None:
    """The packed config kept last.ckpt only every 1000 steps: a Ctrl-C in the first 1000
    restarted from epoch 0."""
    callbacks = yaml.safe_load(config.read_text())["trainer"].get("callbacks", [])
    assert any(
        c["init_args"].get("save_last") and c["init_args"].get("save_on_train_epoch_end")
        for c in callbacks
    ), config
