"""The paper's metrics equal sklearn.metrics computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from torchgeo_moemae.probe import compute_metrics, format_metrics_table


def test_multilabel_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((200, 6)) < 0.3).astype(np.int64)
    y[0] = 1  # every class present
    p = np.clip(y * 0.4 + rng.random((200, 6)) * 0.6, 0, 1).astype(np.float32)
    got = compute_metrics(y, p, "multilabel")
    pred = (p >= 0.5).astype(int)  # torchmetrics: prob > threshold; no value is exactly 0.5 here
    for avg in ("micro", "macro"):
        assert got[f"precision_{avg}"] == pytest.approx(
            skm.precision_score(y, pred, average=avg, zero_division=0), abs=1e-5
        )
        assert got[f"recall_{avg}"] == pytest.approx(
            skm.recall_score(y, pred, average=avg, zero_division=0), abs=1e-5
        )
        assert got[f"f1_{avg}"] == pytest.approx(
            skm.f1_score(y, pred, average=avg, zero_division=0), abs=1e-5
        )
        assert got[f"map_{avg}"] == pytest.approx(
            skm.average_precision_score(y, p, average=avg), abs=1e-5
        )


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    logits = rng.standard_normal((300, 5)) + 2.0 * np.eye(5)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got = compute_metrics(y, p, "multiclass")
    pred = p.argmax(1)
    assert got["overall_accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert got[f"{name}_macro"] == pytest.approx(
            fn(y, pred, average="macro", zero_division=0), abs=1e-5
        )
    table = format_metrics_table({"cls": got}, percent=True)
    assert "OA" in table and "| cls |" in table


def test_absent_class_counts_zero_without_warning(recwarn: pytest.WarningsRecorder) -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((50, 5)) < 0.4).astype(np.int64)
    y[:, 3] = 0  # a class the evaluation split does not hold
    p = rng.random((50, 5)).astype(np.float32)
    got = compute_metrics(y, p, "multilabel")
    present = [c for c in range(5) if c != 3]
    per_class = [skm.average_precision_score(y[:, c], p[:, c]) for c in present]
    assert got["map_macro"] == pytest.approx(sum(per_class) / 5, abs=1e-5)
    assert not [w for w in recwarn if "No positive samples" in str(w.message)]


def test_single_present_class_macro_map() -> None:
    """A split where only one class has positives (small or skewed test sets) still scores."""
    rng = np.random.default_rng(3)
    y = np.zeros((40, 4), dtype=np.int64)
    y[rng.random(40) < 0.4, 2] = 1
    p = rng.random((40, 4)).astype(np.float32)
    got = compute_metrics(y, p, "multilabel")
    assert got["map_macro"] == pytest.approx(
        skm.average_precision_score(y[:, 2], p[:, 2]) / 4, abs=1e-5
    )
