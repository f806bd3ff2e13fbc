"""RGB rendering of 7-band Landsat samples for the datasets' ``plot`` methods."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from ..bands import RGB_INDICES


def rgb_image(image: Tensor) -> np.ndarray:
    """(7, H, W) DN or normalised image -> (H, W, 3) float RGB (B4, B3, B2) in [0, 1].

    A 2-98 percentile stretch over the three bands together keeps the colour balance and works
    for raw DN and z-scored inputs alike.
    """
    rgb = image[list(RGB_INDICES)].detach().cpu().double().numpy().transpose(1, 2, 0)
    finite = rgb[np.isfinite(rgb)]
    if finite.size == 0:
        return np.zeros_like(rgb)
    lo, hi = np.percentile(finite, (2, 98))
    out: np.ndarray = np.clip((rgb - lo) / max(hi - lo, 1e-12), 0, 1)
    return np.nan_to_num(out)


def plot_rgb(
    image: Tensor,
    labels: list[str],
    predictions: list[str] | None,
    show_titles: bool,
    suptitle: str | None,
) -> Figure:
    """Render one sample as an RGB figure titled with its label (and predicted) class names."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(rgb_image(image))
    ax.axis("off")
    if show_titles:
        title = "Labels: " + (", ".join(labels) or "none")
        if predictions is not None:
            title += "\nPredictions: " + (", ".join(predictions) or "none")
        ax.set_title(textwrap.fill(title, width=50), fontsize=8)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig
