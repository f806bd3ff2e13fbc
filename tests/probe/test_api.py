"""Probing API: torch and sklearn probes agree on data with a known answer (Gaussian blobs);
linear_probe is the paper's protocol, checked against sklearn by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_moemae.probe import Embeddings, probe_embeddings


def _blobs(n: int, d: int, c: int, seed: int, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).standard_normal((c, d)) * 1.2
    if multilabel:
        y = (rng.random((n, c)) < 0.3).astype(np.int64)
        x = y @ centers + rng.standard_normal((n, d))
    else:
        y = rng.integers(0, c, n)
        x = 0.3 * centers[y] + rng.standard_normal((n, d))  # overlapping: accuracy < 100%
    return x.astype(np.float32), y


@pytest.mark.parametrize("multilabel", [True, False])
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_torch_probe_agrees_with_sklearn(multilabel: bool, optimizer: str) -> None:
    d, c = 32, 5
    train = Embeddings(*_blobs(400, d, c, 0, multilabel))
    test = Embeddings(*_blobs(200, d, c, 1, multilabel))
    sk = probe_embeddings(train, test, "sklearn")
    th = probe_embeddings(train, test, "torch", optimizer=optimizer, device="cpu", block_rows=128)
    keys = (
        ["map_micro", "map_macro", "f1_micro"] if multilabel else ["overall_accuracy", "f1_macro"]
    )
    for k in keys:
        assert abs(sk[k] - th[k]) <= 0.01, (k, sk[k], th[k])
    # the problem is learnable: well above chance
    assert sk[keys[0]] > (0.8 if multilabel else 0.5)


def test_linear_probe_is_the_paper_protocol_by_hand(tmp_path: Path) -> None:
    """linear_probe == pre-norm CLS features + sklearn's SAG logistic regression, computed here."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.multiclass import OneVsRestClassifier

    from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
    from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
    from torchgeo_moemae.models import create_encoder
    from torchgeo_moemae.probe import Featurizer, extract_embeddings, linear_probe

    make_synthetic_bigearthnet_ls(tmp_path / "ben", num_patches=60, seed=0)
    dm = BigEarthNetLSDataModule(root=tmp_path / "ben", batch_size=32)
    encoder = create_encoder("XXS").eval()
    metrics = linear_probe(encoder, dm, pool="cls", method="sklearn", out_dir=tmp_path / "out")

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        loader = torch.utils.data.DataLoader(dm.dataset_class(split=split, **dm.kwargs), 64)
        feats, labels = [], []
        with torch.no_grad():
            for batch in loader:
                feats.append(Featurizer(encoder)(dm.aug(batch)).numpy())
                labels.append(batch["label"].numpy())
        return np.concatenate(feats), np.concatenate(labels)

    (x_train, y_train), (x_test, y_test) = features("train"), features("test")
    stored = extract_embeddings(encoder, dm, "train", progress=False)["cls"]
    np.testing.assert_allclose(stored.features, x_train, atol=1e-5)
    probe = OneVsRestClassifier(
        LogisticRegression(C=1.0, solver="sag", max_iter=1000, random_state=0)
    )
    proba = probe.fit(x_train, y_train).predict_proba(x_test)
    expected = average_precision_score(y_test, proba, average="micro")
    assert metrics["map_micro"] == pytest.approx(expected, abs=1e-4)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"]["map_micro"] == metrics["map_micro"]
    assert "mAP (micro)" in (tmp_path / "out" / "metrics.md").read_text()


def test_sklearn_probe_shows_progress(capsys: pytest.CaptureFixture[str]) -> None:
    """The sklearn probe on all-token features ran for minutes without a sign of life."""
    from torchgeo_moemae.probe.sklearn_probe import fit_sklearn_probe

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), (rng.random((30, 3)) > 0.5).astype(np.int64)
    fit_sklearn_probe(x, y, max_iter=5, progress=True)
    err = capsys.readouterr().err
    assert "sklearn probe (30 x 4, 3 one-vs-rest fits)" in err and "elapsed" in err
    fit_sklearn_probe(x, y, max_iter=5)
    assert capsys.readouterr().err == ""
