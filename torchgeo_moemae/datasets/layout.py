"""Arrange a flat BigEarthNet-L sample (``images/``, ``labels/``, ``samples.csv``) as Landsat-Bench."""

from __future__ import annotations

import csv
from pathlib import Path

from .bigearthnet_ls import BigEarthNetLS


def arrange_bigearthnet_sample(source: str | Path, root: str | Path) -> Path:
    """Link a sample's ``images/`` and ``labels/`` under ``root/bigearthnet-l/`` (no copies) and
    write every split CSV with all of ``samples.csv``'s rows (its header row "0" included, which
    :class:`BigEarthNetLS` recognises as a header).

    Args:
        source: directory with ``images/``, ``labels/`` and ``samples.csv``.
        root: new dataset root for ``BigEarthNetLS(root)``.

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
        rows = list(csv.reader(f))
    for filename in BigEarthNetLS.split_filenames.values():
        with open(root / filename, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return root
