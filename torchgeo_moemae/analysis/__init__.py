"""Analysis tools: reconstructions, expert contribution/ablation maps, sparsity, t-SNE, curves."""

from .curves import plot_training_curves, read_lightning_logs
from .embeddings_plot import plot_tsne, primary_labels, tsne_2d
from .experts import (
    ablate_expert,
    expert_ablation_maps,
    expert_contribution_maps,
    plot_expert_maps,
    routing_maps,
)
from .reconstruction import (
    masked_reconstruction_loss,
    plot_reconstruction,
    reconstruct,
    to_rgb,
)
from .sparsity import LayerSparsity, SparsityReport, sparsity_report

__all__ = [
    "LayerSparsity",
    "SparsityReport",
    "ablate_expert",
    "expert_ablation_maps",
    "expert_contribution_maps",
    "masked_reconstruction_loss",
    "plot_expert_maps",
    "plot_reconstruction",
    "plot_training_curves",
    "plot_tsne",
    "primary_labels",
    "read_lightning_logs",
    "reconstruct",
    "routing_maps",
    "sparsity_report",
    "to_rgb",
    "tsne_2d",
]
