"""Figures name the weights and data they show, and the saved PNG keeps the caption."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from torchgeo_moemae.analysis.figures import label_figure, save_figure
from torchgeo_moemae.models.checkpoint import Provenance


def _figure() -> Figure:
    fig = Figure(figsize=(4, 2))
    fig.subplots().imshow([[0.0, 1.0], [1.0, 0.0]])
    return fig


def test_caption_names_weights_and_data_and_is_saved(tmp_path: Path) -> None:
    weights = Provenance("/runs/export/mae.safetensors", "ab" * 32)
    fig = label_figure(_figure(), weights, "bigearthnet_ls test split (data/ben), its first 4")
    caption = " ".join(fig.texts[0].get_text().split())
    assert caption == (
        f"weights: /runs/export/mae.safetensors, sha256 {'ab' * 32} "
        "data: bigearthnet_ls test split (data/ben), its first 4"
    )
    labelled = Image.open(save_figure(fig, tmp_path / "labelled.png", dpi=50)).size
    plain = Image.open(save_figure(_figure(), tmp_path / "plain.png", dpi=50)).size
    assert labelled[1] > plain[1]  # the caption under the axes is inside the saved area
