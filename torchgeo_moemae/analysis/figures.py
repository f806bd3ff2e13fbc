"""Figures that say what they show: a caption naming the weights and the data, saved whole.

A reconstruction or an expert map of a random encoder looks much like one of a trained encoder:
:func:`label_figure` writes under the figure which weights (their
:class:`~torchgeo_moemae.models.Provenance`: entry, file, SHA-256, or "random init") and which
data it shows; :func:`save_figure` writes the PNG with the caption (``bbox_inches="tight"``) whole
or not at all (:func:`~torchgeo_moemae.outputs.atomic_path`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.figure import Figure

from ..outputs import atomic_path

__all__ = ["label_figure", "save_figure"]

#: caption font size (points)
CAPTION_FONTSIZE = 7.0


def label_figure(fig: Figure, weights: object, data: str) -> Figure:
    """Write ``weights: ...`` and ``data: ...`` under ``fig`` (wrapped to its width).

    Args:
        fig: the figure (its axes are not moved: the caption lies below them, and
            :func:`save_figure` widens the saved area to hold it).
        weights: where the weights came from (a :class:`~torchgeo_moemae.models.Provenance` or
            its text).
        data: what the images are, e.g. ``"bigearthnet_ls test split (data/ben), first 4"``.

    Returns:
        ``fig``.
    """
    # monospace characters are 0.6 em wide: wrap at the figure's width
    width = max(40, int(fig.get_figwidth() * 72 / (0.6 * CAPTION_FONTSIZE)))
    lines = [f"weights: {weights}", f"data: {data}"]
    text = "\n".join(textwrap.fill(line, width, subsequent_indent="    ") for line in lines)
    fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=CAPTION_FONTSIZE, family="monospace")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: float = 150) -> Path:
    """Save ``fig`` as a PNG at ``path``, caption included, written whole or not at all."""
    path = Path(path)
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=dpi, bbox_inches="tight", format="png")
    return path
