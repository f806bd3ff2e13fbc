"""Embedding extraction from the synthetic BigEarthNet-L datamodule, the memmap store, linear_probe, CLIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_moemae.cli import main
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.probe import extract_embeddings, linear_probe, load_embeddings
from torchgeo_moemae.probe.encoders import build_encoder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ben")
    make_synthetic_bigearthnet_ls(path, num_patches=60, seed=0)
    return path


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_encoder("XXS")


def test_extract_pools_store_and_determinism(
    root: Path, encoder: torch.nn.Module, tmp_path: Path
) -> None:
    dm = BigEarthNetLSDataModule(root=root, batch_size=16)
    encoder.train()
    mem = extract_embeddings(encoder, dm, "test", pools="cls,avg,all", progress=False)
    assert encoder.training  # mode restored
    n = len(mem["cls"])
    c, tokens = encoder.embed_dim, encoder.num_prefix_tokens + encoder.num_patches
    assert mem["cls"].features.shape == (n, c)
    assert mem["avg"].features.shape == (n, c)
    assert mem["all"].features.shape == (n, tokens * c)
    assert mem["cls"].labels.shape == (n, 19)
    all_tok = mem["all"].features.reshape(n, tokens, c)
    np.testing.assert_allclose(all_tok[:, encoder.cls_index], mem["cls"].features, atol=1e-6)
    np.testing.assert_allclose(all_tok.mean(1), mem["avg"].features, atol=1e-5)
    disk = extract_embeddings(
        encoder, dm, "test", pools=("cls", "all"), out_dir=tmp_path, batch_size=7, progress=False
    )
    back = load_embeddings(tmp_path / "test_all")
    assert isinstance(back.features, np.memmap)
    np.testing.assert_allclose(np.asarray(back.features), mem["all"].features, atol=1e-5)
    assert back.manifest["N"] == n and back.manifest["pool"] == "all" and back.task == "multilabel"
    assert disk["cls"].path == tmp_path / "test_cls"
    # metadata is used: different lat/lon gives different embeddings
    batch = next(iter(torch.utils.data.DataLoader(dm.dataset_class(split="test", root=root), 4)))
    batch = dm.aug(batch)
    with torch.no_grad():
        encoder.eval()
        a = encoder.forward_features(
            batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"]
        )
        np.testing.assert_allclose(a[:, 4].numpy(), mem["cls"].features[:4], atol=1e-5)


@pytest.mark.parametrize("method", ["sklearn", "torch"])
def test_linear_probe(root: Path, encoder: torch.nn.Module, method: str, tmp_path: Path) -> None:
    dm = BigEarthNetLSDataModule(root=root, batch_size=32)
    m = linear_probe(encoder, dm, pool="cls", method=method, out_dir=tmp_path)
    for k in ("precision_micro", "recall_macro", "f1_micro", "map_micro", "map_macro"):
        assert 0.0 <= m[k] <= 1.0
    assert (tmp_path / "metrics.json").is_file()


def test_timm_peer(root: Path) -> None:
    import timm

    dm = BigEarthNetLSDataModule(root=root, batch_size=16)
    resnet = timm.create_model("resnet18", in_chans=7, num_classes=0)
    out = extract_embeddings(resnet, dm, "test", pools="cls,avg", progress=False)
    assert out["cls"].features.shape[1] == 512


def test_cli_embed_probe(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "emb"
    assert (
        main(
            [
                "embed",
                "--model",
                "XXS",
                "--root",
                str(root),
                "--split",
                "train,test",
                "--pool",
                "cls",
                "--out",
                str(out),
                "--num-workers",
                "0",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "probe",
                "--embeddings",
                str(out),
                "--method",
                "torch",
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "mAP (micro)" in text
    assert (tmp_path / "m.json").is_file() and (tmp_path / "m.md").is_file()
