"""TorchGeo-style weights API: entries read from their url, provenance, the normalisation transform."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import torchvision
from torchgeo.trainers import ClassificationTask, MultiLabelClassificationTask
from torchvision.models._api import WeightsEnum

import torchgeo_moemae  # noqa: F401
from torchgeo_moemae.models import (
    MoEMAE,
    MoEMAELandsat_Weights,
    Provenance,
    checkpoint,
    create_mae,
    get_model,
    get_weight,
    list_models,
    load_weights,
)
from torchgeo_moemae.models.checkpoint import RANDOM_INIT


def test_torchgeo_style_api(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    assert list_models() == ["moemae_landsat", "moemae_landsat_xs", "moemae_landsat_xxs"]
    weight = get_weight("MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS")
    assert weight.meta["in_chans"] == 7 and weight.meta["model"] == "moemae_landsat"
    assert weight.url.startswith("https://hf.co/albughdadim/")
    normalised = weight.transforms(torch.full((1, 7, 40, 40), 10_000.0))
    assert normalised.shape == (1, 7, 40, 40)
    source = timm.create_model("moemae_landsat_xxs").eval()
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    loaded = get_model("moemae_landsat_xxs", weights=tmp_path).eval()
    x = torch.randn(1, 7, 40, 40)
    torch.testing.assert_close(loaded(x), source(x))
    with pytest.raises(ValueError, match="not a valid weights name"):
        get_weight("nope")


def test_transforms_normalise_tensors_and_sample_dicts() -> None:
    from torchgeo_moemae.bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD

    weight = get_weight("MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS")
    x = torch.rand(2, 7, 40, 40) * 20_000
    mean = torch.tensor(BIGEARTHNET_LS_MEAN).view(7, 1, 1)
    std = torch.tensor(BIGEARTHNET_LS_STD).view(7, 1, 1)
    torch.testing.assert_close(weight.transforms(x), (x - mean) / std)
    image = x[0]
    sample = {"image": image, "lat": torch.tensor(50.0)}
    out = weight.transforms(sample)
    torch.testing.assert_close(out["image"], (image - mean) / std)
    assert out["lat"] is sample["lat"] and sample["image"] is image  # input dict untouched


WEIGHTS = MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS


def _load(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """TorchGeo's test stand-in for torchvision's load_state_dict_from_url: a local file."""
    return torch.load(url, weights_only=True)


@pytest.fixture
def mocked_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WeightsEnum, MoEMAE]:
    """TorchGeo's convention: the entry's url is a local file (a full MAE training checkpoint)."""
    torch.manual_seed(3)
    mae = create_mae("S").eval()
    path = tmp_path / "pretrained_S_best.pth"
    torch.save({"epoch": 1, "model_state": mae.state_dict()}, path)
    monkeypatch.setattr(WEIGHTS.value, "url", str(path))
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", _load)
    monkeypatch.setattr(
        checkpoint, "hf_hub_download", lambda *a, **k: pytest.fail("a mirror is not the Hub")
    )
    return WEIGHTS, mae


def _features(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, 7, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval().forward_features(x)


def test_entry_metadata_is_torchgeo_style() -> None:
    assert WEIGHTS.meta["publication"] == "https://arxiv.org/abs/2509.10919"
    assert WEIGHTS.meta["hour_encoding"] == "authors"


def test_get_model_honours_the_entry_url(mocked_weights: tuple[WeightsEnum, MoEMAE]) -> None:
    weights, mae = mocked_weights
    model = get_model("moemae_landsat", weights)
    torch.testing.assert_close(_features(model), _features(mae.encoder), rtol=0, atol=0)
    read = load_weights(weights)
    assert read.architecture == "moemae_landsat" and read.hour_encoding == "authors"
    assert read.provenance.entry == str(weights) and read.provenance.source == weights.url


def test_get_state_dict_loads_into_the_timm_model(
    mocked_weights: tuple[WeightsEnum, MoEMAE],
) -> None:
    weights, mae = mocked_weights
    model = timm.create_model("moemae_landsat")
    model.load_state_dict(weights.get_state_dict(progress=True))  # strict: every key
    torch.testing.assert_close(_features(model), _features(mae.encoder), rtol=0, atol=0)


@pytest.mark.parametrize("task_class", [ClassificationTask, MultiLabelClassificationTask])
def test_torchgeo_tasks_fine_tune_from_the_entry(
    mocked_weights: tuple[WeightsEnum, MoEMAE], task_class: type
) -> None:
    """TorchGeo's own tasks take the entry as they take theirs."""
    weights, mae = mocked_weights
    task = task_class(model="moemae_landsat", weights=weights, in_channels=7, num_classes=5)
    torch.testing.assert_close(_features(task.model), _features(mae.encoder), rtol=0, atol=0)
    assert task.model.get_classifier().out_features == 5


def test_hub_urls_go_through_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "pretrained_S_best.pth"
    mae = create_mae("S")
    torch.save(mae.state_dict(), file)
    calls: list[tuple[Any, ...]] = []

    def download(repo_id: str, filename: str, **kwargs: Any) -> str:
        calls.append((repo_id, filename, kwargs.get("revision")))
        return str(file)

    monkeypatch.setattr(checkpoint, "hf_hub_download", download)
    monkeypatch.setattr(
        torchvision.models._api,
        "load_state_dict_from_url",
        lambda *a, **k: pytest.fail("torch hub"),
    )
    read = load_weights(WEIGHTS)
    assert calls == [(WEIGHTS.meta["hf_hub_id"], WEIGHTS.meta["hf_hub_filename"], "main")]
    assert read.provenance.source == str(file)
    assert read.provenance.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()


def test_provenance_of_files_state_dicts_and_random_init(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    file = tmp_path / "model.safetensors"
    save_file(timm.create_model("moemae_landsat_xxs").state_dict(), file)
    read = load_weights(file)
    assert read.provenance == Provenance(str(file), hashlib.sha256(file.read_bytes()).hexdigest())
    assert read.hour_encoding == "utc" and str(read.provenance).startswith(str(file))
    assert load_weights(read) is read  # read once, passed on
    assert str(load_weights(dict(read.state_dict)).provenance) == "state dict"
    assert str(RANDOM_INIT) == "random init" and RANDOM_INIT.is_random_init


def test_weights_modules_import_without_a_cycle() -> None:
    """The leaf reader imports no loader; the loaders form no import cycle."""
    package = Path(checkpoint.__file__).parent
    loaders = {"checkpoint", "factory", "registry", "weights"}
    graph: dict[str, set[str]] = {}
    for name in loaders:
        tree = ast.parse((package / f"{name}.py").read_text())
        graph[name] = {
            node.module.lstrip(".")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        } & loaders
    assert graph["checkpoint"] == set()
    assert "weights" not in graph["registry"] and "factory" not in graph["registry"]
    assert "factory" not in graph["weights"]
    assert not (package / "provenance.py").exists()
    registry = (package / "registry.py").read_text()
    assert "_resolve_pretrained_source" not in registry and 'hf_hub_id"):' not in registry
