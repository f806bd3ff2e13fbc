#!/usr/bin/env python3
"""Write ``embed_scene_before.npz``: window embeddings of the committed Liverpool crop as the
single-scene ``embed_scene`` loop computed them before scene embedding ran on Lightning's predict
loop (commit d8423fa of this repository; the windows, their metadata and the featurizer are
unchanged since, so the new engine must reproduce them).

The old loop anchored windows at the scene's upper-left pixel; run at ``stride=2`` it embeds every
window whose offset from that pixel is even, which includes every window of the new CRS-anchored
grid at strides 20 and 40 on this crop (first window at row 26 / column 6 for stride 40, 6 / 6 for
stride 20). Stored: the CLS embeddings (float32) of the windows at rows ``6 + 20 i`` and columns
``6 + 20 j`` of the crop (``rows``/``cols`` give their upper-left pixels), for the XXS encoder of
:func:`data.seeded_encoder` (seed 0).

Usage (at commit d8423fa, from the repository root; a few minutes on one CPU thread)::

    git worktree add /tmp/before d8423fa && cd /tmp/before
    python tests/data/landsat_scene/make_golden.py --out <repo>/tests/data/landsat_scene/
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch

HERE = Path(__file__).resolve().parent
CROP = HERE.parents[2] / "docs" / "data" / "landsat8-l2-scene"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from data import seeded_encoder

    from torchgeo_moemae.scene import embed_scene

    torch.set_num_threads(1)
    encoder = seeded_encoder("moemae_landsat_xxs", seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        out = embed_scene(
            CROP, Path(tmp) / "emb.tif", encoder, stride=2, pool="cls", quicklook=False
        )
        with rasterio.open(out) as src:
            emb = src.read()  # (dim, rows, cols): window (i, j) starts at pixel (2 i, 2 j)
    rows = np.arange(6, 267 - 40 + 1, 20)
    cols = np.arange(6, 433 - 40 + 1, 20)
    windows = emb[:, rows[:, None] // 2, cols[None, :] // 2].transpose(1, 2, 0)
    np.savez_compressed(
        args.out / "embed_scene_before.npz",
        rows=rows,
        cols=cols,
        cls=windows.astype(np.float32),
    )
    print(args.out / "embed_scene_before.npz", windows.shape)


if __name__ == "__main__":
    main()
