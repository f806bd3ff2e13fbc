"""Linear probing of frozen encoders: embedding extraction, scikit-learn and torch probes, metrics."""

from .api import fit_predict, linear_probe, probe_embedding_dirs, probe_embeddings
from .embed import Embeddings, embedding_dir, extract_embeddings, load_embeddings
from .featurizer import Featurizer
from .metrics import compute_metrics, format_metrics_table, make_metric_collection, save_metrics
from .sklearn_probe import fit_sklearn_probe, sklearn_predict_proba
from .torch_probe import TorchLinearProbe, fit_torch_probe, torch_predict_proba

__all__ = [
    "Embeddings",
    "Featurizer",
    "TorchLinearProbe",
    "compute_metrics",
    "embedding_dir",
    "extract_embeddings",
    "fit_predict",
    "fit_sklearn_probe",
    "fit_torch_probe",
    "format_metrics_table",
    "linear_probe",
    "load_embeddings",
    "make_metric_collection",
    "probe_embedding_dirs",
    "probe_embeddings",
    "save_metrics",
    "sklearn_predict_proba",
    "torch_predict_proba",
]
