"""torch and sklearn probes agree on data with a known answer (Gaussian blobs)."""

from __future__ import annotations

import numpy as np
import pytest

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
