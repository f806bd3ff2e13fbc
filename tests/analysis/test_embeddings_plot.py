"""t-SNE figures of embeddings are written and non-empty."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from torchgeo_moemae.analysis import plot_tsne, primary_labels


def test_tsne(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((60, 4)) < 0.4).astype(int)
    x = (y @ rng.standard_normal((4, 16)) + 0.1 * rng.standard_normal((60, 16))).astype(np.float32)
    fig = plot_tsne(x, y, class_names=list("abcd"), max_points=50)
    fig.savefig(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert primary_labels(np.array([[0, 1], [0, 0]])).tolist() == [1, -1]
