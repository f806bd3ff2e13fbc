"""``moemae embed`` then ``moemae probe``; the architecture comes from an export folder's config.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchgeo_moemae.cli import main
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae


def test_embed_export_folder_then_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_synthetic_bigearthnet_ls(tmp_path / "ben", num_patches=40, seed=0)
    weights = export_encoder(create_mae("XXS"), tmp_path / "export")
    out = tmp_path / "emb"
    common = ["--root", str(root), "--num-workers", "0", "--threads", "1"]
    assert main(["embed", "--weights", str(weights), "--out", str(out), *common]) == 0  # no --model
    manifest = json.loads((out / "test_cls" / "manifest.json").read_text())
    assert manifest["model_name"] == "moemae_landsat_xxs"
    assert manifest["D"] == 108 and manifest["prenorm"] is True
    post = tmp_path / "post"
    args = [
        "embed",
        "--weights",
        str(weights),
        "--out",
        str(post),
        "--post-norm",
        "--split",
        "test",
    ]
    assert main([*args, *common]) == 0
    pre_cls = np.load(out / "test_cls" / "features.npy")
    assert not np.allclose(np.load(post / "test_cls" / "features.npy"), pre_cls)

    metrics = tmp_path / "m.json"
    assert (
        main(["probe", "--embeddings", str(out), "--method", "torch", "--out", str(metrics)]) == 0
    )
    text = capsys.readouterr().out
    assert "mAP (micro)" in text
    assert json.loads(metrics.read_text())["results"]["cls"]["map_micro"] >= 0
    assert "mAP (micro)" in metrics.with_suffix(".md").read_text()
