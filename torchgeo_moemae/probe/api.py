"""Linear probing in one call: of stored embeddings (:func:`probe_embeddings`,
:func:`probe_embedding_dirs`) or of a frozen encoder on a datamodule (:func:`linear_probe`)."""

from __future__ import annotations

import time as _time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..outputs import check_output
from ..vocabulary import DEFAULT_POOL
from .embed import Embeddings, embedding_dir, extract_embeddings, load_embeddings, shared_ids
from .metrics import compute_metrics, format_metrics_table, save_metrics
from .sklearn_probe import fit_sklearn_probe, sklearn_predict_proba
from .torch_probe import fit_torch_probe, torch_predict_proba

__all__ = [
    "PROVENANCE_KEYS",
    "fit_predict",
    "linear_probe",
    "probe_embedding_dirs",
    "probe_embeddings",
    "probe_report",
]

Method = Literal["sklearn", "torch"]

#: The fields of an embedding manifest that say what made the embeddings.
PROVENANCE_KEYS = (
    "weights",
    "model",
    "pool",
    "prenorm",
    "dataset",
    "root",
    "split",
    "N",
    "package_version",
)


def fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    eval_x: np.ndarray,
    task: str,
    num_classes: int,
    method: Method = "sklearn",
    seed: int = 0,
    **kwargs: Any,
) -> np.ndarray:
    """Fit a probe of ``method`` on the training features and return evaluation probabilities."""
    if method == "sklearn":
        est = fit_sklearn_probe(train_x, train_y, task, seed=seed, **kwargs)
        return sklearn_predict_proba(est, eval_x, num_classes)
    if method == "torch":
        probe = fit_torch_probe(train_x, train_y, task, num_classes, seed=seed, **kwargs)
        return torch_predict_proba(probe, eval_x)
    raise ValueError(f"method must be 'sklearn' or 'torch', got {method!r}")


def probe_embeddings(
    train: Embeddings,
    evaluation: Embeddings,
    method: Method = "sklearn",
    seed: int = 0,
    allow_overlap: bool = False,
    **kwargs: Any,
) -> dict[str, float]:
    """Fit on ``train`` embeddings, evaluate on ``evaluation``: the paper's metrics (values in [0, 1]).

    Samples in both (same id, where the embeddings record ids) would make the metrics measure
    memorisation: they are refused with a ``ValueError``, or with ``allow_overlap`` reported in a
    warning.
    """
    if train.features.shape[1] != evaluation.features.shape[1]:
        raise ValueError(
            f"feature widths differ: train {train.features.shape[1]}, eval {evaluation.features.shape[1]}"
        )
    shared = shared_ids(train, evaluation)
    if shared:
        where = f"{train.path or 'train'} and {evaluation.path or 'evaluation'}"
        message = (
            f"{where} share {len(shared)} of {len(evaluation)} sample ids (e.g. {shared[0]}): the "
            "metrics would measure memorisation, not the embeddings"
        )
        if not allow_overlap:
            raise ValueError(f"{message}; use disjoint splits, or --allow-overlap to probe anyway")
        warnings.warn(message, UserWarning, stacklevel=2)
    task, c = train.task, max(train.num_classes, evaluation.num_classes)
    proba = fit_predict(
        train.features, train.labels, evaluation.features, task, c, method, seed, **kwargs
    )
    return compute_metrics(evaluation.labels, proba, task, c)  # type: ignore[arg-type]


def probe_embedding_dirs(
    embeddings: str | Path,
    pools: Sequence[str],
    method: Method = "sklearn",
    train_split: str = "train",
    eval_split: str = "test",
    seed: int = 0,
    allow_overlap: bool = False,
    log: Callable[[str], None] = tqdm.write,
    **probe_kwargs: Any,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, Any]]]]:
    """Probe the embeddings ``moemae embed`` wrote under ``embeddings``, one pool at a time.

    Args:
        embeddings: the folder holding ``<split>_<pool>/`` embedding directories.
        pools: the pools to probe.
        method, seed, allow_overlap: as :func:`probe_embeddings` takes them.
        train_split, eval_split: the splits to fit on and to evaluate on.
        log: where the progress lines go.
        **probe_kwargs: more :func:`probe_embeddings` options (``C``, ``max_iter`` ...).

    Returns:
        ``{pool: metrics}`` (with ``seconds``, the probe's wall time) and, per pool, the
        :data:`PROVENANCE_KEYS` of each split's manifest (which weights, model and data made the
        embeddings) and ``shared_ids``, the number of samples in both splits (0 unless
        ``allow_overlap``); :func:`probe_report` writes both as Markdown.
    """
    results: dict[str, dict[str, float]] = {}
    made_by: dict[str, dict[str, Any]] = {}
    for pool in pools:
        train = load_embeddings(embedding_dir(embeddings, train_split, pool))
        evaluation = load_embeddings(embedding_dir(embeddings, eval_split, pool))
        log(f"{pool}: fitting the {method} probe on {len(train)} x {train.features.shape[1]} ...")
        start = _time.perf_counter()
        metrics = probe_embeddings(train, evaluation, method, seed, allow_overlap, **probe_kwargs)
        metrics["seconds"] = _time.perf_counter() - start
        log(f"{pool}: done in {metrics['seconds']:.1f} s")
        results[pool] = metrics
        made_by[pool] = {
            split: {key: emb.manifest.get(key) for key in PROVENANCE_KEYS}
            for split, emb in ((train_split, train), (eval_split, evaluation))
        }
        made_by[pool]["shared_ids"] = len(shared_ids(train, evaluation))
    return results, made_by


def probe_report(
    results: dict[str, dict[str, float]],
    made_by: dict[str, dict[str, Any]],
    method: str,
    train_split: str = "train",
    eval_split: str = "test",
    percent: bool = False,
) -> str:
    """The Markdown report of :func:`probe_embedding_dirs`' results: the metrics table, then the
    weights, model, data and N behind each row. A result of overlapping splits
    (``allow_overlap``) says so first, in bold.
    """
    lines = [f"Linear probe ({method}): fit on {train_split}, evaluated on {eval_split}.", ""]
    overlaps = [
        f"{pool}: {record['shared_ids']} of {record[eval_split].get('N')}"
        for pool, record in made_by.items()
        if record["shared_ids"]
    ]
    if overlaps:
        lines += [
            f"**--allow-overlap: {eval_split} samples also in {train_split} ({'; '.join(overlaps)}); "
            "these metrics measure memorisation, not the embeddings.**",
            "",
        ]
    lines += [
        format_metrics_table(results, percent),
        "",
        f"| Embedding | Weights | Model | Data | N {train_split} | N {eval_split} |",
        "|---|---|---|---|---:|---:|",
    ]
    for pool, record in made_by.items():
        train, evaluation = record[train_split], record[eval_split]
        cells = [_made_by_cell(train, evaluation, key) for key in ("weights", "model", "data")]
        lines.append(f"| {pool} | {' | '.join(cells)} | {train.get('N')} | {evaluation.get('N')} |")
    return "\n".join(lines)


def _made_by_cell(train: dict[str, Any], evaluation: dict[str, Any], key: str) -> str:
    """One provenance cell of :func:`probe_report`; both splits' values where they differ."""

    def value(record: dict[str, Any]) -> str:
        if key == "data":
            root = record.get("root")
            return f"{record.get('dataset')} ({root})" if root else str(record.get("dataset"))
        found = record.get(key)
        return str(found.get("description") if isinstance(found, dict) else found)

    first, second = value(train), value(evaluation)
    return (
        first
        if first == second
        else f"{train.get('split')}: {first}; {evaluation.get('split')}: {second}"
    )


def linear_probe(
    encoder: nn.Module,
    datamodule: Any,
    pool: str = DEFAULT_POOL,
    method: Method = "sklearn",
    out_dir: str | Path | None = None,
    train_split: str = "train",
    eval_split: str = "test",
    batch_size: int | None = None,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    prenorm: bool | None = None,
    progress: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    **probe_kwargs: Any,
) -> dict[str, float]:
    """Linear-probe a frozen encoder on a datamodule (the paper's protocol).

    Embeds ``train_split`` and ``eval_split`` with :func:`extract_embeddings` (eval mode,
    deterministic routing, the datamodule's normalisation ``aug``, ``lat``/``lon``/``time`` passed to
    a :class:`MoEMAEEncoder`), fits the probe on the first and reports the paper's metrics on the
    second: multi-label ``precision_micro``, ``precision_macro``, ``recall_*``, ``f1_*``, ``map_micro``,
    ``map_macro``; multi-class ``overall_accuracy`` and ``precision/recall/f1_{micro,macro}``.

    Args:
        encoder: a :class:`MoEMAEEncoder` (or a :class:`MoEMAE`: its encoder is used) or a timm model.
        datamodule: e.g. :class:`BigEarthNetLSDataModule` (task inferred from the labels).
        pool: ``"cls"``, ``"avg"`` or ``"all"``.
        method: ``"sklearn"`` (the paper's SAG logistic regression) or ``"torch"``.
        out_dir: if given, embeddings are memory-mapped under it and ``metrics.json``/``metrics.md``
            written there; else everything stays in memory.
        train_split, eval_split: splits to fit on and to evaluate on.
        batch_size, num_workers, device: extraction settings.
        prenorm: tokens before the final LayerNorm; None (default): the paper's protocol (see
            :class:`~torchgeo_moemae.probe.Featurizer`).
        progress: progress bars.
        seed: probe seed.
        overwrite: replace the embeddings and metrics of an earlier probe in ``out_dir`` (else
            they are kept and a ``FileExistsError`` is raised before any work).
        **probe_kwargs: forwarded to :func:`fit_sklearn_probe` or :func:`fit_torch_probe`.

    Returns:
        ``{metric: value}``; also ``seconds`` (wall time of the whole probe).
    """
    start = _time.perf_counter()
    if out_dir is not None:
        for name in ("metrics.json", "metrics.md"):
            check_output(Path(out_dir) / name, overwrite=overwrite)
    enc = getattr(encoder, "encoder", encoder)
    emb: dict[str, Embeddings] = {}
    for split in dict.fromkeys((train_split, eval_split)):
        emb[split] = extract_embeddings(
            enc,
            datamodule,
            split,
            pools=(pool,),
            out_dir=out_dir,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            prenorm=prenorm,
            progress=progress,
            overwrite=overwrite,
        )[pool]
    metrics = probe_embeddings(emb[train_split], emb[eval_split], method, seed, **probe_kwargs)
    metrics["seconds"] = _time.perf_counter() - start
    if out_dir is not None:
        results = {
            "pool": pool,
            "method": method,
            "train_split": train_split,
            "eval_split": eval_split,
            "metrics": metrics,
        }
        save_metrics(results, Path(out_dir) / "metrics.json", {pool: metrics})
    return metrics
