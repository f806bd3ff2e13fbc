"""``moemae analyze``: the sparsity table; figures that name their weights and data; long analyses
that say what they are doing."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from torchgeo_moemae.analysis import figures
from torchgeo_moemae.cli import main
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae
from torchgeo_moemae.utils import file_sha256


def test_cli_sparsity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "sparsity", "--out", str(tmp_path / "sp")]) == 0
    assert "899.0" in capsys.readouterr().out
    assert (tmp_path / "sp.json").is_file()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic data, an XXS export and the embeddings of its test split."""
    base = tmp_path_factory.mktemp("analyze")
    root = make_synthetic_bigearthnet_ls(base / "ben", num_patches=40)
    weights = export_encoder(create_mae("XXS"), base / "export")
    argv = ["embed", "--weights", str(weights), "--root", str(root), "--out", str(base / "emb")]
    assert main([*argv, "--split", "test", "--num-workers", "0", "--threads", "1"]) == 0
    return {"root": root, "weights": weights, "emb": base / "emb"}


def test_figures_name_weights_and_data_and_steps_are_shown(
    workspace: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reconstruction or expert map named neither its weights nor its data (a random encoder's
    looks much the same), and `analyze experts` printed nothing until its figures were written."""
    captions: list[tuple[str, str]] = []

    def label(fig: Figure, weights: object, data: str) -> Figure:
        captions.append((str(weights), data))
        return fig

    monkeypatch.setattr(figures, "label_figure", label)
    root, weights = workspace["root"], workspace["weights"]
    common = [
        "--weights",
        str(weights),
        "--root",
        str(root),
        "--num-samples",
        "2",
        "--threads",
        "1",
    ]
    argv = ["analyze", "reconstruction", *common, "--out", str(tmp_path / "r.png")]
    assert main(argv) == 0
    assert main(["analyze", "experts", *common, "--out", str(tmp_path / "experts")]) == 0
    data = f"bigearthnet_ls test split ({root}), its first 2 images"
    assert [d for _, d in captions] == [data] * 3  # reconstruction, contribution, ablation
    assert file_sha256(weights / "mae.safetensors") in captions[0][0]
    assert all(file_sha256(weights / "model.safetensors") in w for w, _ in captions[1:])
    printed = capsys.readouterr()
    assert f"reading 2 images of the bigearthnet_ls test split ({root}) ..." in printed.out
    assert "expert contribution maps of layers 0 ..." in printed.out
    assert "expert ablation" in printed.err  # its progress bar


def test_tsne_says_what_it_computes(
    workspace: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["analyze", "tsne", "--embeddings", str(workspace["emb"] / "test_cls")]
    assert main([*argv, "--out", str(tmp_path / "t.png"), "--threads", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("t-SNE of 6 of 6 embeddings (") and first.endswith("...")
