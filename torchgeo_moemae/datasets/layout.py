"""Arrange a flat BigEarthNet-L sample (``images/``, ``labels/``, ``samples.csv``) as Landsat-Bench,
with disjoint train/val/test splits."""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path

from .bigearthnet_ls import BigEarthNetLS

logger = logging.getLogger(__name__)

#: default train/val/test fractions of :func:`arrange_bigearthnet_sample`
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def arrange_bigearthnet_sample(
    source: str | Path,
    root: str | Path,
    fractions: tuple[float, float, float] | None = SPLIT_FRACTIONS,
    seed: int = 0,
) -> Path:
    """Link a sample's ``images/`` and ``labels/`` under ``root/bigearthnet-l/`` (no copies) and
    write the split CSVs: disjoint train/val/test splits of ``samples.csv``'s ids.

    Ids whose image or label JSON is missing are left out of the splits (their count is logged),
    so the splits load with the datasets' default ``on_error="raise"``. The CSVs end their lines
    with a line feed, as Landsat-Bench's.

    Args:
        source: directory with ``images/``, ``labels/`` and ``samples.csv`` (its header row "0",
            which :class:`BigEarthNetLS` recognises as a header, is kept).
        root: new dataset root for ``BigEarthNetLS(root)``.
        fractions: train, val and test fractions of the ids (shuffled with ``seed``; the test split
            gets the rest). None: every split lists every id, for code that reads one split of
            the whole sample; never probe such splits (train and test are the same samples).
        seed: seed of the shuffle.

    Returns:
        ``root`` as a Path.

    Raises:
        FileNotFoundError: if ``source`` lacks one of the three.
    """
    source, root = Path(source).resolve(), Path(root)
    for needed in ("images", "labels", "samples.csv"):
        if not (source / needed).exists():
            raise FileNotFoundError(f"{source / needed}: not found (not a BigEarthNet-L sample)")
    base = root / BigEarthNetLS.directory
    base.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "labels"):
        link = base / sub
        if not link.exists():
            link.symlink_to(source / sub, target_is_directory=True)
    with open(source / "samples.csv", newline="") as f:
        header, *listed = list(csv.reader(f))
    rows = [row for row in listed if _complete(source, row[0])]
    if len(rows) < len(listed):
        logger.info(
            "%s: %d of %d ids left out of the splits (image or label JSON missing)",
            source,
            len(listed) - len(rows),
            len(listed),
        )
    splits = dict.fromkeys(BigEarthNetLS.split_filenames, rows)
    if fractions is not None:
        rows = sorted(rows)
        random.Random(seed).shuffle(rows)
        n_train = round(fractions[0] * len(rows))
        n_val = round(fractions[1] * len(rows))
        splits = {
            "train": rows[:n_train],
            "val": rows[n_train : n_train + n_val],
            "test": rows[n_train + n_val :],
        }
    for split, filename in BigEarthNetLS.split_filenames.items():
        with open(root / filename, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header, *splits[split]])
    return root


def _complete(source: Path, patch_id: str) -> bool:
    """Whether a sample id has both its image and its label JSON."""
    return (source / "images" / f"{patch_id}.tif").is_file() and (
        source / "labels" / f"{patch_id}_labels_metadata.json"
    ).is_file()
