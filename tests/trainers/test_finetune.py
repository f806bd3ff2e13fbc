"""FineTuneTask: metadata reaches the encoder, layer-wise lr decay, frozen backbone, export round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from torch.utils.data import DataLoader

from torchgeo_moemae.export import AUTHORS_FIELDS, export_encoder
from torchgeo_moemae.models import checkpoint, create_mae
from torchgeo_moemae.trainers import FineTuneTask

from .conftest import RandomLandsat


def _batch(n: int = 4, multiclass: bool = False) -> dict[str, torch.Tensor]:
    data = RandomLandsat(n)
    batch = {
        k: torch.stack([data[i][k] for i in range(n)]) for k in ("image", "lat", "lon", "time")
    }
    batch["label"] = torch.arange(n) % 3 if multiclass else (torch.rand(n, 19) > 0.5).long()
    return batch


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return export_encoder(create_mae("XXS"), tmp_path / "export")


def test_metadata_changes_the_logits(export: Path) -> None:
    task = FineTuneTask(weights=str(export)).eval()
    batch = _batch()
    moved = {**batch, "lat": -batch["lat"], "lon": batch["lon"] + 90, "time": batch["time"] + 1e7}
    with torch.no_grad():
        logits, moved_logits = task(batch), task(moved)
        unknown = task({k: v for k, v in batch.items() if k not in ("lat", "lon", "time")})
    assert logits.shape == (4, 19)
    assert not torch.allclose(logits, moved_logits)
    assert not torch.allclose(logits, unknown)


def test_weights_entry_loads_the_encoder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mae = create_mae("S")
    file = tmp_path / "pretrained_S_best.pth"
    torch.save({"epoch": 1, "model_state": mae.state_dict()}, file)
    monkeypatch.setattr(checkpoint, "hf_hub_download", lambda repo_id, filename, **kw: str(file))
    task = FineTuneTask(weights="MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS")
    torch.testing.assert_close(task.model.pos_embed, mae.encoder.pos_embed)


def test_layer_decay_groups(export: Path) -> None:
    task = FineTuneTask(weights=str(export), lr=1e-3, layer_decay=0.5)
    optimizer = task.configure_optimizers()["optimizer"]
    depth = len(task.model.blocks)
    rates: dict[int, float] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            rates[id(p)] = group["lr"]
    assert rates[id(task.model.head.weight)] == pytest.approx(1e-3)
    assert rates[id(next(task.model.blocks[-1].parameters()))] == pytest.approx(1e-3 * 0.5)
    assert rates[id(next(task.model.blocks[0].parameters()))] == pytest.approx(1e-3 * 0.5**depth)
    assert rates[id(task.model.pos_embed)] == pytest.approx(1e-3 * 0.5 ** (depth + 1))
    assert len(rates) == sum(1 for _ in task.model.parameters())


def test_freeze_backbone_trains_the_head_only(export: Path) -> None:
    task = FineTuneTask(weights=str(export), num_classes=3, task="multiclass", freeze_backbone=True)
    optimizer = task.configure_optimizers()["optimizer"]
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert trained == {id(p) for p in task.model.head.parameters()}
    loss = task.training_step(_batch(multiclass=True), 0)
    loss.backward()
    assert task.model.pos_embed.grad is None and task.model.head.weight.grad is not None


def _logits(model: Callable[..., torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
    with torch.no_grad():
        return model(batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"])


def test_finetune_then_export_round_trips_through_timm(
    export: Path, tmp_path: Path, make_trainer: Callable[..., Any]
) -> None:
    task = FineTuneTask(weights=str(export), num_classes=3, task="multiclass", global_pool="avg")
    before = next(task.model.blocks[0].parameters()).clone()
    data = RandomLandsat(8)
    samples = [{**data[i], "label": torch.tensor(i % 3)} for i in range(8)]
    loader: DataLoader[dict[str, torch.Tensor]] = DataLoader(samples, batch_size=4)  # type: ignore[arg-type]
    trainer = make_trainer(tmp_path, max_epochs=1, limit_val_batches=1)
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    assert not torch.equal(next(task.model.blocks[0].parameters()), before)  # trained end to end
    out = task.export(tmp_path / "finetuned")
    file = out / "model.safetensors"
    model = timm.create_model(
        "moemae_landsat_xxs",
        num_classes=3,
        global_pool="avg",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(file), num_classes=3),
    ).eval()
    task.eval()
    batch = next(iter(loader))
    torch.testing.assert_close(_logits(model, batch), _logits(task.model, batch))
    # one export policy: what the weights started from is recorded, the authors' release is not
    # claimed, and an earlier export is kept unless asked
    config = json.loads((out / "config.json").read_text())
    assert not set(AUTHORS_FIELDS) & set(config["pretrained_cfg"])
    started = config["trained_with"]["weights"]
    assert started["source"] == str(export / "model.safetensors") and started["sha256"]
    assert config["trained_with"]["time_source"] == "json"  # weights trained here: true times
    with pytest.raises(FileExistsError, match="--overwrite"):
        task.export(out)
    assert task.export(out, overwrite=True) == out


def test_frozen_backbone_stays_in_eval_mode_while_training(export: Path) -> None:
    """The frozen backbone stayed in train mode: gate noise and dropout made two identical
    training forwards differ (by up to 0.18 in the logits) while validation saw eval features."""
    task = FineTuneTask(weights=str(export), num_classes=3, task="multiclass", freeze_backbone=True)
    task.train()
    batch = _batch(multiclass=True)
    with torch.no_grad():
        torch.testing.assert_close(task(batch), task(batch), rtol=0, atol=0)
    assert not task.model.blocks[0].training and task.model.get_classifier().training
    assert task.training  # the task itself trains (its head)


def test_authors_weights_read_the_authors_time_from_the_datamodule(
    tmp_path: Path, ben_root: Path, make_trainer: Callable[..., Any]
) -> None:
    """Under a Trainer, the BigEarthNet-L datamodule (time_source="auto") asks the task what its
    weights need: the authors' weights get their loader's parse of each patch id, fed to an
    encoder that takes the hour as given; weights trained here keep the label JSON's time."""
    from tests.data.golden import authors_state_dict
    from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
    from torchgeo_moemae.datasets.metadata import authors_filename_time

    pth = tmp_path / "pretrained_S_best.pth"
    torch.save({"epoch": 3, "model_state": authors_state_dict("S"), "best_train_loss": 0.5}, pth)
    for weights, source, hour in ((pth, "authors_filename", "utc"), (None, "json", "utc")):
        task = FineTuneTask("S", weights=None if weights is None else str(weights))
        datamodule = BigEarthNetLSDataModule(ben_root, batch_size=3)
        trainer = make_trainer(tmp_path / source, limit_val_batches=1)
        trainer.validate(task, datamodule=datamodule)
        assert datamodule.kwargs["time_source"] == task.time_source == source
        assert task.model.hour_encoding == hour
        sample = datamodule.val_dataset[0]
        if source == "authors_filename":
            assert float(sample["time"]) == authors_filename_time(datamodule.val_dataset.ids[0])
    assert task.trained_hour_encoding == "utc"


@pytest.mark.parametrize("task_class", ["FineTuneTask", "LinearProbeTask"])
def test_json_time_with_the_authors_weights_gets_their_hour_rule(
    task_class: str, tmp_path: Path, ben_root: Path, make_trainer: Callable[..., Any]
) -> None:
    """Told to read the label JSON's true time, both classification tasks give the authors'
    weights the authors' hour rule in the encoder (their weights saw that hour), and say so."""
    from tests.data.golden import authors_state_dict
    from torchgeo_moemae import trainers
    from torchgeo_moemae.datamodules import BigEarthNetLSDataModule

    pth = tmp_path / "pretrained_S_best.pth"
    torch.save({"epoch": 3, "model_state": authors_state_dict("S"), "best_train_loss": 0.5}, pth)
    task = getattr(trainers, task_class)("S", weights=str(pth))
    datamodule = BigEarthNetLSDataModule(ben_root, batch_size=3, time_source="json")
    make_trainer(tmp_path, limit_val_batches=1).validate(task, datamodule=datamodule)
    encoder = task.metadata_encoder
    assert encoder is not None and encoder.hour_encoding == "authors"
    assert task.time_source == "json" and task.trained_hour_encoding == "authors"
