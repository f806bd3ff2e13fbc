"""Embedding extraction from the synthetic BigEarthNet-L datamodule and the memmap store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.models import create_encoder
from torchgeo_moemae.probe import extract_embeddings, load_embeddings


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ben")
    make_synthetic_bigearthnet_ls(path, num_patches=60, seed=0)
    return path


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_encoder("XXS")


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
    assert back.manifest["prenorm"] is True  # the paper's protocol by default
    # post-norm on request: forward_features with the batch metadata; its CLS is the default
    # (pre-norm) CLS through the final LayerNorm
    post = extract_embeddings(encoder, dm, "test", pools="cls", prenorm=False, progress=False)
    batch = next(iter(torch.utils.data.DataLoader(dm.dataset_class(split="test", root=root), 4)))
    batch = dm.aug(batch)
    with torch.no_grad():
        encoder.eval()
        a = encoder.forward_features(
            batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"]
        )
        np.testing.assert_allclose(a[:, 4].numpy(), post["cls"].features[:4], atol=1e-5)
        normed = encoder.norm(torch.from_numpy(mem["cls"].features[:4])).numpy()
        np.testing.assert_allclose(normed, post["cls"].features[:4], atol=1e-5)


def test_timm_peer(root: Path) -> None:
    import timm

    dm = BigEarthNetLSDataModule(root=root, batch_size=16)
    resnet = timm.create_model("resnet18", in_chans=7, num_classes=0)
    out = extract_embeddings(resnet, dm, "test", pools="cls,avg", progress=False)
    assert out["cls"].features.shape[1] == 512


def test_failed_extraction_leaves_no_file_under_the_final_name(
    root: Path, encoder: torch.nn.Module, tmp_path: Path
) -> None:
    """An interrupted `moemae embed` leaves no partial features.npy, under the final name or another."""
    dataset = BigEarthNetLSDataModule(root=root).dataset_class(split="test", root=root)

    def batches() -> Any:
        loader = torch.utils.data.DataLoader(dataset, batch_size=4)
        for i, batch in enumerate(loader):
            if i == 1:
                raise RuntimeError("interrupted")
            yield batch

    class Interrupted(torch.utils.data.DataLoader):
        def __iter__(self) -> Any:
            return batches()

    with pytest.raises(RuntimeError, match="interrupted"):
        extract_embeddings(
            encoder, Interrupted(dataset, batch_size=4), "test", out_dir=tmp_path, progress=False
        )
    assert list(tmp_path.iterdir()) == []
