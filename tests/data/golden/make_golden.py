#!/usr/bin/env python3
"""Write the golden fixtures of tests/models/test_golden_fixtures.py with the authors' code.

Runs the authors' MIT-licensed reference implementation (github.com/AlbughdadiM/geo-moe-mae, put on
``sys.path``, never copied here) on a few inputs, for the XXS and S sizes:

* weights: :func:`reference_weights` sets every parameter of the authors' model from its name and
  position (seeded, no file needed), so the test rebuilds the same authors'-layout state dict from
  ``<size>_keys.json`` (state-dict key -> the parameter it aliases, shape);
* inputs: two normalised 40x40 px images (stored as float16, exact) with latitude, longitude and
  an acquisition time whose hour has two digits (the authors' loader keeps the first digit);
* the authors' metadata encodings, computed by their own dataset code from the product-id
  string their loader parses (their hour rule) and their ``normalize_latlon``;
* outputs in eval mode with the gate noise off (the authors' gate adds noise at inference too):
  the encoder's tokens before the final LayerNorm with metadata, after it without metadata, and
  (XXS) the MAE's prediction for a fixed masking.

Usage::

    python tests/data/golden/make_golden.py --reference /path/to/geo-moe-mae
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SIZES = ("XXS", "S")
#: Acquisition times (UTC), latitudes and longitudes of the two samples.
TIMES = (
    dt.datetime(2018, 7, 17, 11, 33, 21, tzinfo=dt.UTC),
    dt.datetime(2019, 3, 2, 9, 5, 0, tzinfo=dt.UTC),
)
LATS = (52.1, -33.9)
LONS = (4.9, 18.4)
SEED = 20250912


def reference_weights(named_shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Deterministic values of the authors' parameters (``named_parameters()`` order).

    LayerNorm weights ``1 + 0.1 N(0, 1)``, other vectors ``0.1 N(0, 1)``, tokens and position
    embeddings ``0.02 N(0, 1)``, matrices ``N(0, 1) / sqrt(fan_in)``; parameter ``i`` draws from
    a generator seeded ``SEED + i``.
    """
    values = {}
    for i, (name, shape) in enumerate(named_shapes):
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(SEED + i))
        leaf = name.rsplit(".", 1)[-1]
        if len(shape) == 1:
            is_norm_weight = "norm" in name and leaf == "weight"
            values[name] = 1 + 0.1 * noise if is_norm_weight else 0.1 * noise
        elif leaf in ("cls_token", "pos_embed", "mask_token", "decoder_pos_embed"):
            values[name] = 0.02 * noise
        else:
            values[name] = noise / math.sqrt(math.prod(shape[1:]))
    return values


def authors_state_dict(size: str) -> dict[str, torch.Tensor]:
    """The authors'-layout state dict the fixtures were computed with (shared weights repeated
    under every key that aliases them, as in ``<size>_keys.json``)."""
    keys = json.loads((HERE / f"{size}_keys.json").read_text())
    owners: dict[str, tuple[int, ...]] = {}
    for owner, shape in keys.values():
        owners.setdefault(owner, tuple(shape))
    values = reference_weights(list(owners.items()))
    return {key: values[owner] for key, (owner, _) in keys.items()}


def fixed_images() -> torch.Tensor:
    """``(2, 7, 40, 40)`` normalised images, exactly representable in float16."""
    gen = torch.Generator().manual_seed(SEED)
    return torch.randn(2, 7, 40, 40, generator=gen).half().float()


def fixed_masking(num_patches: int = 100, keep: int = 25) -> tuple[torch.Tensor, ...]:
    """``ids_keep (2, keep)``, ``ids_restore (2, N)``, ``mask (2, N)`` (1 = masked)."""
    noise = torch.rand(2, num_patches, generator=torch.Generator().manual_seed(SEED + 1))
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(2, num_patches).scatter(1, ids_keep, 0.0)
    return ids_keep, ids_restore, mask


@contextmanager
def gate_noise_off() -> Iterator[None]:
    """The authors' gate draws ``torch.randn_like`` noise even in eval mode: make it zero."""
    original = torch.randn_like
    torch.randn_like = torch.zeros_like  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.randn_like = original


def _authors_metadata(reference: Path) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(reference))
    from datasets.bigearthnet import BigEarthNetDatasetLS  # the authors' loader
    from utils.data_utils import normalize_latlon

    weeks, hours, lats, lons = [], [], [], []
    for time, lat, lon in zip(TIMES, LATS, LONS, strict=True):
        product_id = f"LC08_L2SP_{time:%Y%m%dT%H%M%S}_28_89"  # the form their loader parses
        week, hour = BigEarthNetDatasetLS._parse_datetime(None, product_id)
        norm_lat, norm_lon = normalize_latlon(lat, lon)
        weeks.append(week)
        hours.append(hour)
        lats.append(norm_lat)
        lons.append(norm_lon)
    return {
        f"meta_{k}": np.asarray(v, dtype=np.float32)
        for k, v in zip(("week", "hour", "lat", "lon"), (weeks, hours, lats, lons), strict=True)
    }


def make(reference: Path, size: str, out_dir: Path) -> None:
    """Write ``<size>.npz`` and ``<size>_keys.json``."""
    sys.path.insert(0, str(reference))
    from models.moe_mae import MOEMAE, build_model  # the authors' model

    torch.manual_seed(SEED)
    mae = MOEMAE(build_model(size, img_size=40, patch_size=4, in_chans=7)).eval()
    named = [(n, tuple(p.shape)) for n, p in mae.named_parameters()]
    values = reference_weights(named)
    with torch.no_grad():
        for name, param in mae.named_parameters():
            param.copy_(values[name])
    # state-dict key -> the parameter it holds (shared expert weights appear under several keys)
    owner = {id(p): n for n, p in mae.named_parameters()}
    keys = {key: [owner[id(p)], list(p.shape)] for key, p in mae.state_dict(keep_vars=True).items()}
    meta = {k: torch.from_numpy(v) for k, v in _authors_metadata(reference).items()}
    x = fixed_images()
    ids_keep, ids_restore, mask = fixed_masking()
    mae.random_masking = lambda *args, **kwargs: (ids_keep, ids_restore, mask)
    with torch.no_grad(), gate_noise_off():
        _, _, prenorm = mae.encoder(x, **meta)
        normed_no_meta, _, _ = mae.encoder(x[:1])
        pred, _, _, _ = mae(x, **meta)
    # Kept small: the tokens after the norm are the LayerNorm of those before it; the sample
    # without metadata is the first image; the MAE prediction is stored for XXS (the decoder is
    # the same for every size).
    arrays: dict[str, Any] = {
        "images": x.half().numpy(),
        "time": np.array([t.timestamp() for t in TIMES]),
        "lat": np.array(LATS),
        "lon": np.array(LONS),
        **{k: v.numpy() for k, v in meta.items()},
        "tokens_prenorm": prenorm.numpy(),
        "tokens_normed_no_metadata": normed_no_meta[:1].numpy(),
    }
    if size == "XXS":
        arrays.update(ids_keep=ids_keep.numpy(), ids_restore=ids_restore.numpy())
        arrays.update(mask=mask.numpy(), decoder_pred=pred.numpy())
    np.savez_compressed(out_dir / f"{size}.npz", **arrays)
    (out_dir / f"{size}_keys.json").write_text(json.dumps(keys, separators=(",", ":")) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the authors' code")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for size in SIZES:
        make(args.reference.resolve(), size, args.out)
        print(f"wrote {args.out / size}.npz and {size}_keys.json")


if __name__ == "__main__":
    main()
