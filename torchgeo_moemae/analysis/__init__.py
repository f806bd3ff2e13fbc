"""Analysis tools: reconstructions, expert contribution/ablation maps, sparsity, t-SNE, curves."""

from .reconstruction import plot_reconstruction, reconstruct, to_rgb

__all__ = ["plot_reconstruction", "reconstruct", "to_rgb"]
