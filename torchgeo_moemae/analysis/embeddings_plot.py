"""t-SNE of embeddings coloured by class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_tsne", "primary_labels", "tsne_2d"]


def primary_labels(labels: np.ndarray) -> np.ndarray:
    """Class per sample: the index itself (single-label) or, for multi-hot ``(N, C)`` labels, the
    sample's rarest positive class (the most informative one); -1 for samples without labels."""
    y = np.asarray(labels)
    if y.ndim == 1:
        return y.astype(int)
    freq = y.sum(0).astype(float)
    score = np.where(y > 0, freq[None, :], np.inf)
    out = score.argmin(1)
    out[~(y > 0).any(1)] = -1
    return out


def tsne_2d(
    features: np.ndarray, perplexity: float = 30.0, seed: int = 0, pca_dim: int | None = 50
) -> np.ndarray:
    """2-D t-SNE coordinates ``(N, 2)`` (after PCA to ``pca_dim`` when the features are wider)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32)
    if pca_dim is not None and x.shape[1] > pca_dim and x.shape[0] > pca_dim:
        x = PCA(pca_dim, random_state=seed).fit_transform(x)
    perplexity = min(perplexity, max(1.0, (x.shape[0] - 1) / 3))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_tsne(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    max_points: int = 3000,
    perplexity: float = 30.0,
    seed: int = 0,
    title: str = "t-SNE of embeddings",
    **fig_kwargs: Any,
) -> Figure:
    """Scatter of a t-SNE of (a random subsample of ``max_points``) embeddings, coloured by class
    (multi-label: the rarest positive class of each sample, see :func:`primary_labels`)."""
    n = features.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    xy = tsne_2d(np.asarray(features[idx]), perplexity, seed)
    cls = primary_labels(np.asarray(labels)[idx])
    fig_kwargs.setdefault("figsize", (8, 6))
    fig = Figure(**fig_kwargs)
    ax = fig.subplots()
    present = list(np.unique(cls))
    cmap = "tab20" if len(present) <= 20 else "nipy_spectral"
    cm = matplotlib.colormaps[cmap]
    for j, c in enumerate(present):
        sel = cls == c
        name = "none" if c < 0 else class_names[c] if class_names is not None else str(c)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cm(j % cm.N), label=name, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(
        fontsize=6, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
    )
    fig.tight_layout()
    return fig
