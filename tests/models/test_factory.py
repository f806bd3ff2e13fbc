"""The one model factory: names, export folders, weights entries through the Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file

from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import (
    MoEMAEEncoder,
    MoEMAELandsat_Weights,
    checkpoint,
    create_encoder,
    create_mae,
    get_model,
)
from torchgeo_moemae.models.factory import timm_name

WEIGHTS = MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS


@pytest.fixture(scope="module")
def xxs_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """An export folder of a random XXS MAE, and that MAE."""
    torch.manual_seed(1)
    mae = create_mae("XXS").eval()
    return export_encoder(mae, tmp_path_factory.mktemp("factory") / "export"), mae


def _tokens(encoder: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, 7, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return encoder.eval().forward_features(x, lat=torch.tensor([40.0, 50.0]))


def test_names() -> None:
    assert timm_name("S") == timm_name("moemae_landsat") == "moemae_landsat"
    assert timm_name("xxs") == "moemae_landsat_xxs"
    assert timm_name("resnet18") == "resnet18"
    with pytest.raises(ValueError, match="model must be one of"):
        timm_name("resnet18", moemae_only=True)


def test_export_folder_gives_the_architecture(xxs_export: tuple[Path, torch.nn.Module]) -> None:
    folder, mae = xxs_export
    expected = _tokens(mae.encoder)
    for weights in (folder, folder / "model.safetensors", str(folder)):
        encoder = create_encoder(weights=weights)
        assert isinstance(encoder, MoEMAEEncoder) and len(encoder.blocks) == 9  # XXS
        torch.testing.assert_close(_tokens(encoder), expected, rtol=0, atol=0)
    full = create_mae(weights=folder)  # reads the folder's mae.safetensors
    for key, value in mae.state_dict().items():
        assert torch.equal(full.state_dict()[key], value), key


def test_wrong_size_is_one_clear_error(
    xxs_export: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    folder, mae = xxs_export
    with pytest.raises(ValueError, match=r"hold a moemae_landsat_xxs \(XXS\) model, but model 'S'"):
        create_encoder("S", folder)
    bare = tmp_path / "encoder.safetensors"  # no config.json next to it: the shapes tell
    save_file(mae.encoder.state_dict(), bare)
    with pytest.raises(ValueError, match=r"hold a XXS .* encoder, the model is S \("):
        create_encoder("S", bare)


def test_encoder_or_mae_weights(xxs_export: tuple[Path, torch.nn.Module]) -> None:
    folder, mae = xxs_export
    # an encoder loads from full-MAE weights; an MAE from encoder weights only when allowed
    encoder = create_encoder("XXS", folder / "mae.safetensors")
    torch.testing.assert_close(_tokens(encoder), _tokens(mae.encoder), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"model\.safetensors, .* hold an encoder only"):
        create_mae("XXS", folder / "model.safetensors")
    partial = create_mae("XXS", folder / "model.safetensors", allow_encoder_weights=True)
    torch.testing.assert_close(_tokens(partial.encoder), _tokens(mae.encoder), rtol=0, atol=0)


def test_missing_weights_and_timm_peers(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"weights not found: .*nope\.pth"):
        create_encoder("XXS", tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="not a valid weights name"):
        create_encoder(weights="MoEMAELandsat_Weights.NOPE")
    peer = create_encoder("resnet18")
    assert peer.num_classes == 0 and peer.conv1.in_channels == 7
    save_file(peer.state_dict(), tmp_path / "rn.safetensors")
    again = create_encoder("resnet18", tmp_path / "rn.safetensors")
    x = torch.randn(1, 7, 40, 40)
    torch.testing.assert_close(again.eval()(x), peer.eval()(x))


def test_get_model_downloads_through_the_hub_cache(
    monkeypatch: pytest.MonkeyPatch, xxs_export: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    """A weights entry goes through hf_hub_download (the HF cache), not torch.hub."""
    s_mae = create_mae("S").eval()
    file = tmp_path / "pretrained_S_best.pth"
    torch.save({"epoch": 1, "model_state": s_mae.state_dict()}, file)
    calls: list[tuple[str, str]] = []

    def fake_download(repo_id: str, filename: str, **kwargs: object) -> str:
        calls.append((repo_id, filename))
        return str(file)

    monkeypatch.setattr(checkpoint, "hf_hub_download", fake_download)
    monkeypatch.setattr(
        "torch.hub.load_state_dict_from_url",
        lambda *a, **k: pytest.fail("torch.hub must not be used"),
    )
    for weights in (WEIGHTS, str(WEIGHTS)):
        encoder = get_model("moemae_landsat", weights)
        torch.testing.assert_close(_tokens(encoder), _tokens(s_mae.encoder), rtol=0, atol=0)
    assert calls == [(WEIGHTS.meta["hf_hub_id"], "pretrained_S_best.pth")] * 2


def test_get_model_offline_without_cache_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(repo_id: str, filename: str, **kwargs: object) -> str:
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    monkeypatch.setattr(checkpoint, "hf_hub_download", offline)
    with pytest.raises(RuntimeError) as info:
        get_model("moemae_landsat", WEIGHTS)
    message = str(info.value)
    assert "Could not load pretrained weights for 'moemae_landsat'" in message
    assert "pretrained_cfg_overlay=dict(file=" in message and "HF_HUB_OFFLINE" in message
    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)


@pytest.mark.usefixtures("offline_empty_hub_cache")
def test_get_model_offline_for_real_gives_the_same_message() -> None:
    """With HF_HUB_OFFLINE and an empty cache, the real hf_hub_download fails the same way."""
    with pytest.raises(RuntimeError, match=r"unset HF_HUB_OFFLINE.*|HF_HUB_OFFLINE"):
        get_model("moemae_landsat", WEIGHTS)


def test_get_model_features_only_loads_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = timm.create_model("moemae_landsat_xxs").eval()
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    features = get_model("moemae_landsat_xxs", tmp_path, features_only=True, out_indices=[1]).eval()
    x = torch.randn(2, 7, 40, 40)
    _, expected = source.forward_intermediates(x, [1])
    torch.testing.assert_close(features(x)[0], expected[0])
