"""Every output says which weights made it; random weights only on request; sample ids kept with
the embeddings, and train/test overlap refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchgeo_moemae import __version__
from torchgeo_moemae.cli import main
from torchgeo_moemae.datasets import BigEarthNetLS, make_synthetic_bigearthnet_ls
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae
from torchgeo_moemae.utils import file_sha256


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("provenance")
    root = make_synthetic_bigearthnet_ls(base / "ben", num_patches=40, seed=0)
    weights = export_encoder(create_mae("XXS"), base / "export")
    emb = base / "emb"
    argv = ["embed", "--weights", str(weights), "--out", str(emb), "--root", str(root)]
    assert main([*argv, "--num-workers", "0", "--split", "train,test"]) == 0
    return {"base": base, "root": root, "weights": weights, "emb": emb}


def test_embed_refuses_random_weights_unless_asked(
    embedded: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`moemae embed` without --weights silently embedded with a random encoder."""
    argv = ["embed", "--out", str(tmp_path / "emb"), "--root", str(embedded["root"])]
    assert main([*argv, "--split", "test", "--num-workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--random-init" in err
    assert not (tmp_path / "emb").exists()
    assert main([*argv, "--split", "test", "--num-workers", "0", "--random-init"]) == 0
    manifest = json.loads((tmp_path / "emb" / "test_cls" / "manifest.json").read_text())
    assert manifest["weights"]["description"] == "random init"


def test_embeddings_record_weights_and_sample_ids(embedded: dict[str, Path]) -> None:
    folder = embedded["emb"] / "test_cls"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["weights"]["sha256"] == file_sha256(embedded["weights"] / "model.safetensors")
    assert manifest["model"] == "moemae_landsat_xxs" and manifest["pool"] == "cls"
    assert manifest["package_version"] == __version__ and manifest["skipped"] == {}
    ids = np.load(folder / "ids.npy").tolist()
    assert ids == BigEarthNetLS(embedded["root"], split="test").ids


def test_probe_refuses_overlapping_ids_and_records_provenance(
    embedded: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A probe evaluated on its own training samples reported 1.000 on every metric."""
    emb = str(embedded["emb"])
    same = ["probe", "--embeddings", emb, "--train-split", "test", "--eval-split", "test"]
    assert main(same) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "share" in err and "--allow-overlap" in err
    with pytest.warns(UserWarning, match="share"):
        assert main([*same, "--allow-overlap"]) == 0
    out = tmp_path / "r.json"
    assert main(["probe", "--embeddings", emb, "--method", "torch", "--out", str(out)]) == 0
    made_by = json.loads(out.read_text())["embeddings_provenance"]["cls"]
    assert made_by["train"]["weights"]["sha256"] == file_sha256(
        embedded["weights"] / "model.safetensors"
    )
    assert made_by["test"]["model"] == "moemae_landsat_xxs"


def test_probe_report_names_weights_data_and_n_and_marks_overlap(
    embedded: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The probe's Markdown was a bare table: no weights, data or N, and an --allow-overlap
    result looked like a real one."""
    emb, root = str(embedded["emb"]), embedded["root"]
    n = {split: len(BigEarthNetLS(root, split=split)) for split in ("train", "test")}
    out = tmp_path / "r.json"
    assert main(["probe", "--embeddings", emb, "--out", str(out)]) == 0
    report = out.with_suffix(".md").read_text()
    assert report in capsys.readouterr().out
    sha = file_sha256(embedded["weights"] / "model.safetensors")
    row = next(line for line in report.splitlines() if line.startswith("| cls |") and sha in line)
    assert f"moemae_landsat_xxs | BigEarthNetLS ({root}) | {n['train']} | {n['test']} |" in row
    assert "allow-overlap" not in report
    same = ["probe", "--embeddings", emb, "--train-split", "test", "--eval-split", "test"]
    with pytest.warns(UserWarning, match="share"):
        assert main([*same, "--allow-overlap", "--out", str(tmp_path / "o.json")]) == 0
    marked = (tmp_path / "o.md").read_text().splitlines()[2]
    assert marked.startswith(f"**--allow-overlap: test samples also in test (cls: {n['test']} of")
