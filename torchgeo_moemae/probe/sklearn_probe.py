"""The paper's probe: scikit-learn logistic regression (L2, C=1, SAG solver, 1000 iterations).

Multi-label targets (BigEarthNet) are fitted one-vs-rest (one binary problem per class); single
label targets (EuroSAT) with the multinomial loss. scikit-learn needs the whole feature matrix in
memory: for BigEarthNet-L's all-token features (16 GB) use :mod:`~torchgeo_moemae.probe.torch_probe`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

__all__ = ["fit_sklearn_probe", "sklearn_predict_proba"]


def fit_sklearn_probe(
    features: np.ndarray,
    labels: np.ndarray,
    task: str | None = None,
    C: float = 1.0,
    solver: str = "sag",
    max_iter: int = 1000,
    standardize: bool = False,
    n_jobs: int | None = None,
    seed: int = 0,
    quiet: bool = True,
    progress: bool = False,
) -> Any:
    """Fit ``LogisticRegression(C, solver, max_iter)`` (one-vs-rest for multi-hot labels).

    Args:
        features: ``(N, D)``; a memory map is read into memory.
        labels: multi-hot ``(N, C)`` or class indices ``(N,)``.
        task: ``"multilabel"``/``"multiclass"`` (default: from ``labels.ndim``).
        C: inverse L2 strength (the paper: 1).
        solver: the paper's ``"sag"``.
        max_iter: the paper's 1000.
        standardize: z-score features first (the paper does not).
        n_jobs: parallel one-vs-rest fits.
        seed: ``random_state`` of the stochastic solver.
        quiet: silence convergence warnings (SAG often stops at ``max_iter`` on raw features).
        progress: show the elapsed time while scikit-learn fits (it reports nothing itself; the
            paper's probe on all-token features takes minutes).
    """
    task = task or ("multilabel" if labels.ndim == 2 else "multiclass")
    lr = LogisticRegression(C=C, solver=solver, max_iter=max_iter, random_state=seed)
    est: Any = OneVsRestClassifier(lr, n_jobs=n_jobs) if task == "multilabel" else lr
    if standardize:
        est = make_pipeline(StandardScaler(), est)
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels)
    what = f"{y.shape[1]} one-vs-rest fits" if task == "multilabel" else "multinomial fit"
    with (
        warnings.catch_warnings(),
        _elapsed(f"sklearn probe ({x.shape[0]} x {x.shape[1]}, {what})", progress),
    ):
        if quiet:
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="Label not .* present in all training")
        est.fit(x, y)
    return est


@contextmanager
def _elapsed(desc: str, enabled: bool, every: float = 1.0) -> Iterator[None]:
    """A one-line display of the time spent in the block, refreshed every ``every`` seconds on a
    terminal; into a file or pipe (a log) only its first and last state are written."""
    if not enabled:
        yield
        return
    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed} elapsed", total=None)
    if not getattr(bar.fp, "isatty", lambda: False)():
        with closing(bar):
            yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def sklearn_predict_proba(
    estimator: Any, features: np.ndarray, num_classes: int | None = None
) -> np.ndarray:
    """Probabilities ``(N, C)``; multiclass columns are placed by class index (classes unseen in
    training get probability 0)."""
    proba = np.asarray(estimator.predict_proba(np.asarray(features, dtype=np.float32)))
    classes = getattr(estimator, "classes_", None)
    if (
        classes is not None
        and np.asarray(classes).ndim == 1
        and num_classes is not None
        and proba.shape[1] != num_classes
        and not isinstance(_final(estimator), OneVsRestClassifier)
    ):
        full = np.zeros((proba.shape[0], num_classes), dtype=proba.dtype)
        full[:, np.asarray(classes, dtype=int)] = proba
        return full
    return proba


def _final(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator
