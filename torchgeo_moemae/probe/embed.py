"""Frozen-encoder embeddings, extracted in eval mode and written to disk chunk by chunk.

Features come from :class:`~torchgeo_moemae.probe.featurizer.Featurizer` (default: the paper's
protocol, tokens before the final LayerNorm; pools ``"cls"``, ``"avg"``, ``"all"``).

Storage: one directory per (split, pool) holding ``features.npy`` (an ``np.lib.format.open_memmap``
of shape ``(N, D)`` float32 filled batch by batch, so BigEarthNet-L's 16 GB all-token features never
sit in memory), ``labels.npy``, ``ids.npy`` (the sample ids, row by row, where the dataset has them)
and ``manifest.json`` (which also lists the samples the dataset skipped). The directory is written
under a partial name and renamed when complete (:func:`~torchgeo_moemae.outputs.atomic_path`), so an
interrupted extraction leaves nothing behind. :func:`load_embeddings` memory-maps them back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..outputs import atomic_path, check_output
from ..utils import default_device, eval_mode
from ..vocabulary import DEFAULT_POOL, embedding_folder
from .featurizer import Featurizer, check_pool

__all__ = [
    "IDS_FILE",
    "Embeddings",
    "embedding_dir",
    "extract_embeddings",
    "load_embeddings",
    "shared_ids",
    "split_loader",
]


@dataclass
class Embeddings:
    """Features ``(N, D)`` (an array or a read-only memory map) and labels of one (split, pool)."""

    features: np.ndarray
    labels: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    #: the sample id of each row (None where the dataset has no ids)
    ids: np.ndarray | None = None

    @property
    def task(self) -> str:
        """``"multilabel"`` for multi-hot ``(N, C)`` labels, else ``"multiclass"``."""
        return "multilabel" if self.labels.ndim == 2 else "multiclass"

    @property
    def num_classes(self) -> int:
        """C, from the manifest or the labels."""
        if "num_classes" in self.manifest:
            return int(self.manifest["num_classes"])
        return int(self.labels.shape[1] if self.labels.ndim == 2 else self.labels.max() + 1)

    def __len__(self) -> int:
        return int(self.features.shape[0])


#: the sample ids of an embedding directory, row by row
IDS_FILE = "ids.npy"


def embedding_dir(out_dir: str | Path, split: str, pool: str) -> Path:
    """Where one (split, pool) of ``out_dir`` is stored (:func:`~torchgeo_moemae.vocabulary.embedding_folder`)."""
    return Path(out_dir) / embedding_folder(split, pool)


def load_embeddings(path: str | Path, mmap: bool = True) -> Embeddings:
    """Read a directory written by :func:`extract_embeddings` (features memory-mapped by default)."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{path} is not an embedding directory (no manifest.json); create one with `moemae embed`"
        )
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("complete", False):
        raise ValueError(f"{path} holds an incomplete extraction; run `moemae embed` again")
    features = np.load(path / "features.npy", mmap_mode="r" if mmap else None)
    labels = np.load(path / "labels.npy")
    ids = np.load(path / IDS_FILE) if (path / IDS_FILE).is_file() else None
    return Embeddings(features, labels, manifest, path, ids)


def shared_ids(first: Embeddings, second: Embeddings) -> list[str]:
    """The sample ids both hold, sorted (empty when either records no ids)."""
    if first.ids is None or second.ids is None:
        return []
    return sorted(set(first.ids.tolist()) & set(second.ids.tolist()))


# --------------------------------------------------------------------------- data plumbing
def _dataset_for_split(datamodule: Any, split: str) -> Dataset:
    """A fresh dataset of ``split`` from a torchgeo NonGeoDataModule (``dataset_class`` + ``kwargs``)."""
    if hasattr(datamodule, "dataset_class") and hasattr(datamodule, "kwargs"):
        return datamodule.dataset_class(split=split, **datamodule.kwargs)
    dataset = getattr(datamodule, f"{split}_dataset", None)
    if dataset is None:
        raise ValueError(
            f"cannot build the {split!r} split of {type(datamodule).__name__}: it has no "
            "dataset_class/kwargs and no {split}_dataset attribute"
        )
    return dataset


def split_loader(
    data: Any, split: str = "train", batch_size: int | None = None, num_workers: int | None = None
) -> tuple[DataLoader, Callable[[dict[str, Tensor]], dict[str, Tensor]] | None]:
    """An in-order, complete DataLoader of ``split`` and the batch normalisation to apply to it.

    ``data`` is a datamodule (its ``aug``, the evaluation normalisation, is returned; train-time
    augmentations such as flips are not used), a :class:`~torch.utils.data.Dataset` or a
    :class:`~torch.utils.data.DataLoader` (both: no normalisation, batches are used as they come).
    Unlike the datamodule's train loader, the loader neither shuffles nor drops the last batch.
    """
    if isinstance(data, DataLoader):
        return data, None
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size or 64, num_workers=num_workers or 0), None
    dataset = _dataset_for_split(data, split)
    loader = DataLoader(
        dataset,
        batch_size=batch_size or getattr(data, "batch_size", 64) or 64,
        shuffle=False,
        drop_last=False,
        num_workers=getattr(data, "num_workers", 0) if num_workers is None else num_workers,
        collate_fn=getattr(data, "collate_fn", None),
    )
    return loader, getattr(data, "aug", None)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }


@torch.no_grad()
def extract_embeddings(
    encoder: nn.Module,
    data: Any,
    split: str = "train",
    pools: str | Sequence[str] = (DEFAULT_POOL,),
    out_dir: str | Path | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = True,
    prenorm: bool | None = None,
    transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    progress: bool = True,
    manifest: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Embeddings]:
    """Embed every sample of a split with a frozen encoder, for several pools in one pass.

    The encoder runs in eval mode (deterministic MoE routing, no dropout) without gradients, under
    bfloat16 autocast on CUDA when ``amp``; features are stored as float32. The encoder's mode is
    restored afterwards.

    Args:
        encoder: a :class:`MoEMAEEncoder` (gets ``lat``/``lon``/``time``) or any timm model.
        data: a datamodule (the ``split`` dataset is built from ``dataset_class``/``kwargs`` and its
            ``aug`` normalises the batches), a Dataset or a DataLoader (batches used as they come).
        split: ``"train"``, ``"val"`` or ``"test"``.
        pools: one or more of ``"cls"``, ``"avg"``, ``"all"`` (a comma-separated string is accepted).
        out_dir: write ``out_dir/<split>_<pool>/`` memory maps; None keeps the features in memory.
        batch_size, num_workers: loader settings (default: the datamodule's).
        device: default CUDA if available, else CPU.
        amp: bfloat16 autocast on CUDA.
        prenorm: tokens before the final LayerNorm; None (default): the paper's protocol (pre-norm
            for our encoder, ``forward_features`` for other timm models); see :class:`Featurizer`.
        transform: batch normalisation overriding the datamodule's ``aug``.
        progress: show a progress bar.
        manifest: extra fields for ``manifest.json`` (e.g. model name, weights, dataset).
        overwrite: replace existing ``out_dir/<split>_<pool>/`` directories (only once the new
            ones are complete); without it they are kept and a ``FileExistsError`` is raised
            before any work.

    Returns:
        ``{pool: Embeddings}``.
    """
    pool_list = [p.strip() for p in pools.split(",")] if isinstance(pools, str) else list(pools)
    for p in pool_list:
        check_pool(p)
    finals = {
        p: check_output(embedding_dir(out_dir, split, p), folder=True, overwrite=overwrite)
        for p in pool_list
        if out_dir is not None
    }
    dev = default_device(device)
    loader, aug = split_loader(data, split, batch_size, num_workers)
    if transform is not None:
        aug = transform
    featurizer = Featurizer(encoder, prenorm)
    with contextlib.ExitStack() as partials:
        # every directory is written under a partial name and renamed only when all are complete
        folders = {
            p: partials.enter_context(atomic_path(f, folder=True)) for p, f in finals.items()
        }
        stores, labels = _embed_split(
            featurizer, loader, aug, dev, amp, pool_list, folders, f"embed {split}", progress
        )
        info = {
            "model": type(encoder).__name__,
            **_describe(loader.dataset, labels, split),
            "prenorm": featurizer.prenorm,
            "normalised_with": type(aug).__name__ if aug is not None else None,
            **(manifest or {}),
        }
        ids = _ids(loader.dataset, len(labels))
        if ids is not None:
            info["ids"] = IDS_FILE
        manifests = {
            p: {**info, "pool": p, "D": int(a.shape[1]), "complete": True}
            for p, a in stores.items()
        }
        for p, folder in folders.items():
            features = stores.pop(p)
            assert isinstance(features, np.memmap)
            features.flush()
            del features  # close the map before its folder is renamed
            _write_folder(folder, labels, ids, manifests[p])
    return {
        p: load_embeddings(finals[p])
        if p in finals
        else Embeddings(stores[p], labels, m, None, ids)
        for p, m in manifests.items()
    }


def _embed_split(
    featurizer: Featurizer,
    loader: DataLoader,
    aug: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None,
    device: torch.device,
    amp: bool,
    pools: Sequence[str],
    folders: dict[str, Path],
    desc: str,
    progress: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the featurizer over every batch of ``loader`` (in order): ``{pool: (N, D)}`` features
    (memory maps in ``folders``' pools, arrays otherwise) and the ``(N, ...)`` labels."""
    encoder = featurizer.encoder
    n = len(loader.dataset)  # type: ignore[arg-type]
    param = next(encoder.parameters())
    if param.device != device:
        encoder.to(device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if amp and device.type == "cuda"
        else contextlib.nullcontext()
    )
    stores: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    offset = 0
    with eval_mode(encoder):
        try:
            for batch in tqdm(loader, desc=desc, disable=not progress, unit="batch"):
                batch = _to_device(aug(batch) if aug is not None else batch, device)
                with autocast:
                    tokens = featurizer.tokens(batch)
                b = tokens.shape[0]
                y = batch["label"].cpu().numpy()
                if labels is None:
                    labels = np.empty((n, *y.shape[1:]), dtype=y.dtype)
                labels[offset : offset + b] = y
                for p in pools:
                    z = featurizer.pool(tokens, p).float().cpu().numpy()
                    if p not in stores:
                        stores[p] = _allocate(folders.get(p), n, z.shape[1])
                    stores[p][offset : offset + b] = z
                offset += b
        finally:
            if param.device != device:
                encoder.to(param.device)
    if offset != n or labels is None:
        raise RuntimeError(f"{desc}: the loader yielded {offset} samples, expected {n} (> 0)")
    return stores, labels


def _describe(dataset: Any, labels: np.ndarray, split: str) -> dict[str, Any]:
    """The manifest fields that describe the embedded split."""
    num_classes = (
        labels.shape[1]
        if labels.ndim == 2
        else len(getattr(dataset, "classes", [])) or int(labels.max()) + 1
    )
    info: dict[str, Any] = {
        "dataset": type(dataset).__name__,
        "split": split,
        "N": len(labels),
        "num_classes": int(num_classes),
        "task": "multilabel" if labels.ndim == 2 else "multiclass",
        "dtype": "float32",
        "ids": None,
        # the samples the dataset left out (id -> reason), so that the rows can be traced
        "skipped": dict(getattr(dataset, "skipped", None) or {}),
    }
    if hasattr(dataset, "classes"):
        info["classes"] = list(dataset.classes)
    return info


def _ids(dataset: Any, n: int) -> np.ndarray | None:
    """The sample id of each row, where the dataset has one per row."""
    ids = getattr(dataset, "ids", None)
    return np.asarray(ids, dtype=str) if ids is not None and len(ids) == n else None


def _write_folder(
    folder: Path, labels: np.ndarray, ids: np.ndarray | None, manifest: dict[str, Any]
) -> None:
    """The labels, ids and manifest next to an embedding directory's ``features.npy``."""
    np.save(folder / "labels.npy", labels)
    if ids is not None:
        np.save(folder / IDS_FILE, ids)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _allocate(folder: Path | None, n: int, d: int) -> np.ndarray:
    """An ``(n, d)`` float32 array in memory, or a fresh ``.npy`` memory map in ``folder``."""
    if folder is None:
        return np.empty((n, d), dtype=np.float32)
    gib = n * d * 4 / 2**30
    if gib > 1:
        tqdm.write(f"writing {n} x {d} float32 ({gib:.1f} GiB) to {folder / 'features.npy'}")
    return np.lib.format.open_memmap(
        folder / "features.npy", mode="w+", dtype=np.float32, shape=(n, max(d, 1))
    )
