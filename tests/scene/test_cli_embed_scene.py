"""``moemae embed-scene``: end to end on a synthetic product, weights, and random weights refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import timm
from safetensors.torch import save_file

from torchgeo_moemae.cli import main
from torchgeo_moemae.models.factory import load_model
from torchgeo_moemae.scene import embed_scene
from torchgeo_moemae.utils import file_sha256


def embed_scene_args(product: Path, out: Path) -> list[str]:
    """``moemae embed-scene`` of ``product`` into ``out`` with the XXS model."""
    return ["embed-scene", str(product), "--out", str(out), "--model", "XXS"]


def test_embed_scene_refuses_random_weights_unless_asked(
    product: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without weights (and none cached) it exited 0 with a map of a random encoder."""
    out = tmp_path / "emb.tif"
    argv = [*embed_scene_args(product, out), "--threads", "1", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--random-init" in err and "no --weights" in err
    assert not out.exists()
    assert main([*argv, "--random-init"]) == 0
    printed = capsys.readouterr().out
    assert f"{out} (weights: random init)" in printed and str(out.with_suffix(".png")) in printed
    with rasterio.open(out) as src:
        assert src.count == 108 and src.tags()["pool"] == "cls"


def test_embed_scene_with_weights_matches_api(product: Path, tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    save_file(timm.create_model("moemae_landsat_xxs").state_dict(), weights)
    out = tmp_path / "cli.tif"
    args = [
        *embed_scene_args(product, out),
        "--weights",
        str(weights),
    ]
    assert main([*args, "--pool", "avg", "--stride", "30", "--no-progress", "--no-quicklook"]) == 0
    assert not out.with_suffix(".png").exists()
    with rasterio.open(out) as src:  # which weights, model and package made the map
        tags = src.tags()
    assert tags["weights_sha256"] == file_sha256(weights) and tags["model"] == "moemae_landsat_xxs"
    assert tags["package_version"].startswith("torchgeo-moemae ")
    encoder, source = load_model("XXS", weights)
    assert source.source == str(weights) and source.sha256 is not None
    api = embed_scene(product, tmp_path / "api.tif", encoder, pool="avg", stride=30, progress=False)
    with rasterio.open(out) as a, rasterio.open(api) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_scene_maps_refuse_other_models(
    product: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*embed_scene_args(product, tmp_path / "m.tif"), "--model", "resnet18", "--random-init"]
    assert main(argv) == 2
    assert "a scene map needs a MoE-MAE encoder" in capsys.readouterr().err


def test_the_task_refuses_missing_weights() -> None:
    from torchgeo_moemae.scene import SceneEmbeddingTask

    with pytest.raises(ValueError, match="no weights: give weights"):
        SceneEmbeddingTask("XXS")
    with pytest.raises(ValueError, match="not both"):
        SceneEmbeddingTask("XXS", "model.safetensors", random_init=True)


def test_embed_scene_resumes_refuses_other_settings_and_keeps_outputs_on_ctrl_c(
    product: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A rerun with the same settings keeps the finished map (resume); other settings are refused
    unless --overwrite; Ctrl-C in the middle of `--overwrite`: no partial file, old map kept."""
    out = tmp_path / "emb.tif"
    argv = [*embed_scene_args(product, out), "--random-init", "--no-progress"]
    assert main(argv) == 0
    before = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir() if p.is_file()
    }
    assert sorted(before) == ["emb.json", "emb.png", "emb.tif"]
    capsys.readouterr()
    assert main(argv) == 0  # finished with these settings: kept as it is
    assert f"{out} (weights: random init)" in capsys.readouterr().out
    assert main([*argv, "--stride", "20"]) == 2  # made otherwise: kept unless --overwrite
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stride 40 != 20" in err and "--overwrite" in err
    assert {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir() if p.is_file()
    } == before

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("torchgeo_moemae.scene.writer.EmbeddingWriter.write_row", interrupted)
    assert main([*argv, "--overwrite"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "moemae embed-scene: interrupted"
    assert {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir() if p.is_file()
    } == before
    assert not [p for p in tmp_path.rglob("*") if "partial" in p.name]
