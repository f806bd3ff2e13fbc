"""The paper's linear-probe evaluation for a set of encoders, beside the published values.

For every (dataset, encoder): frozen embeddings of the train and test splits (cached on disk and
verified), the paper's probe (scikit-learn SAG logistic regression, one-vs-rest for BigEarthNet-L's
19 labels) fitted on train, the paper's metrics on test, and the published values of
:mod:`~torchgeo_moemae.probe.published` with the difference ``measured - paper``.

Encoders are named by a string (see ``docs/user_guide/reproducing.rst``):

* one of this package's weights names, an export folder or a checkpoint file (the authors'
  ``.pth``): the MoE-MAE encoder, fed 40x40 patches (BigEarthNet-L: the central crop, as the
  authors' loader; EuroSAT-L: bilinear resize) z-scored with the BigEarthNet-L statistics (the
  published weights' ``transforms``, on both datasets), with the samples' metadata read as the
  weights were trained (:func:`~torchgeo_moemae.vocabulary.sample_time`: the authors' weights get
  the time their loader parsed from each patch id); embeddings ``"cls"``, ``"all"`` and
  ``"avg"`` (:class:`~torchgeo_moemae.probe.Featurizer`);
* a TorchGeo weights name such as ``ResNet18_Weights.LANDSAT_OLI_SR_MOCO`` (``ENTRY=path`` for a
  local file): TorchGeo's model fed as Landsat-Bench feeds it
  (:mod:`~torchgeo_moemae.probe.baselines`); one embedding, the model's pooled features.

Cache: ``cache_dir/<encoder>/<dataset>[-limit<N>]/<split>_<pool>/`` (the layout of
:func:`~torchgeo_moemae.probe.extract_embeddings`) plus ``checksums.json``: the SHA-256 of every
file and the settings the embeddings depend on: the weights file's SHA-256, the ordered ids of the
split (a digest), the preprocessing and the metadata rule. A folder is reused only when both
match, so an interrupted run resumes where it stopped and a corrupted or stale one is recomputed,
each announced in one line.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from ..bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD, PATCH_SIZE
from ..datasets.utils import OnError
from ..models import Checkpoint, load_weights
from ..models.checkpoint import read_checkpoint
from ..models.convert import is_upstream_state_dict, unwrap_checkpoint
from ..outputs import atomic_path
from ..transforms import Normalize
from ..utils import file_sha256
from ..vocabulary import (
    DATASETS,
    PAPER_POOLS,
    POOL_LABELS,
    TimeSource,
    sample_time,
    weights_kind,
)
from .api import Method, probe_embeddings
from .baselines import (
    LANDSAT_BENCH_PATCH,
    LandsatBenchResize,
    TorchGeoWeights,
    recognise_torchgeo_file,
    ssl4eo_l_transform,
)
from .embed import Embeddings, embedding_dir, extract_embeddings, load_embeddings
from .featurizer import check_pool
from .metrics import METRIC_LABELS
from .published import BASELINE_NAMES, MOEMAE_WEIGHTS, published_values

__all__ = [
    "EncoderSpec",
    "EvaluationRow",
    "evaluate",
    "format_evaluation",
    "resolve_encoder",
    "save_evaluation",
]

CHECKSUMS = "checksums.json"


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder to evaluate: its name as given, its weights, and how it is fed."""

    name: str
    #: the key of :data:`~torchgeo_moemae.probe.published.PUBLISHED` (None: nothing published)
    paper_key: str | None
    label: str
    #: embeddings this encoder is evaluated with
    pools: tuple[str, ...]
    #: hex SHA-256 of the weights file (what the cache must match)
    weights_sha256: str | None
    #: a MoE-MAE encoder's weights, read once
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)
    #: a TorchGeo baseline's weights
    torchgeo: TorchGeoWeights | None = None
    #: the time source of the samples (MoE-MAE encoders; see the module docstring)
    time_source: TimeSource = "json"

    @property
    def cache_name(self) -> str:
        """A folder name for this encoder's cache."""
        if weights_kind(self.name.partition("=")[0]) != "path":
            return self.name.partition("=")[0]
        digest = hashlib.sha1(str(Path(self.name).resolve()).encode()).hexdigest()[:8]
        return f"{Path(self.name).name}-{digest}"

    @property
    def hour_encoding(self) -> str | None:
        """The hour rule a MoE-MAE encoder reads the samples' time with (None for baselines)."""
        if self.checkpoint is None:
            return None
        return sample_time(self.checkpoint.hour_encoding, self.time_source)[1]

    def pool_label(self, pool: str) -> str:
        """What an embedding is, as the tables name it (a baseline: what its features pool)."""
        return self.torchgeo.pooled if self.torchgeo is not None else POOL_LABELS.get(pool, pool)

    def build(self) -> nn.Module:
        """The frozen encoder."""
        if self.torchgeo is not None:
            return self.torchgeo.build()
        from ..models import create_encoder

        return create_encoder(None, self.checkpoint, hour_encoding=self.hour_encoding)

    def dataset_kwargs(self, dataset: str) -> dict[str, Any]:
        """How the dataset delivers this encoder's patches (see the module docstring)."""
        if self.torchgeo is not None:
            return {
                "patch_size": None,
                "transforms": LandsatBenchResize(LANDSAT_BENCH_PATCH[dataset]),
            }
        if DATASETS[dataset].metadata:
            return {"patch_size": PATCH_SIZE, "time_source": self.time_source}
        return {"patch_size": PATCH_SIZE}

    def transform(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The batch preprocessing of the dataset's patches."""
        if self.torchgeo is not None:
            return ssl4eo_l_transform()
        return Normalize(BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD)

    def settings(self, dataset: str) -> dict[str, Any]:
        """What the embeddings depend on besides the data: weights, preprocessing, metadata."""
        kwargs = self.dataset_kwargs(dataset)
        return {
            "encoder": self.name,
            "weights_sha256": self.weights_sha256,
            "patch_size": kwargs.get("patch_size"),
            "sample_transform": repr(kwargs.get("transforms")),
            "batch_transform": repr(self.transform()),
            "time_source": kwargs.get("time_source"),
            "hour_encoding": self.hour_encoding,
        }


def _torchgeo_spec(name: str) -> EncoderSpec:
    weights = TorchGeoWeights.resolve(name)
    label = BASELINE_NAMES.get(weights.name, weights.name)
    return EncoderSpec(name, weights.name, label, ("cls",), weights.sha256, torchgeo=weights)


def resolve_encoder(
    name: str, pools: Sequence[str] = PAPER_POOLS, time_source: TimeSource | None = None
) -> EncoderSpec:
    """What ``name`` is (see the module docstring), its weights read once.

    Args:
        name: a weights name (this package's or TorchGeo's, ``ENTRY=path`` for a local file of a
            TorchGeo entry), an export folder or a checkpoint file.
        pools: the embeddings of MoE-MAE encoders.
        time_source: the samples' time for MoE-MAE encoders (None: what their weights were
            trained with, :func:`~torchgeo_moemae.vocabulary.sample_time`).

    Raises:
        FileNotFoundError: ``name`` is neither a weights name nor an existing path.
        ValueError: a file that holds no MoE-MAE weights (a TorchGeo checkpoint not recognised by
            its name), or an unknown weights name.
    """
    for p in pools:
        check_pool(p)
    entry, _, local = name.partition("=")
    try:
        kind = weights_kind(entry)
    except ValueError as err:
        raise FileNotFoundError(f"encoder not found: {err}") from None
    if kind == "torchgeo":
        return _torchgeo_spec(name)
    if kind == "path" and local:
        raise ValueError(f"encoder {name}: ENTRY=path names a TorchGeo weights entry and its file")
    path = Path(name)
    if kind == "path" and not path.exists():
        raise FileNotFoundError(f"encoder {name} not found: no such file or folder")
    if kind == "path" and path.is_file() and not _holds_moemae_weights(path):
        recognised = recognise_torchgeo_file(path)
        if recognised is None:
            raise ValueError(
                f"encoder {name}: not MoE-MAE weights, nor the file of a TorchGeo weights entry by "
                "its name; for TorchGeo's weights pass --encoder ENTRY=path (e.g. "
                f"ResNet18_Weights.LANDSAT_OLI_SR_MOCO={name})"
            )
        return _torchgeo_spec(f"{recognised}={name}")
    checkpoint = load_weights(name)
    published = name == MOEMAE_WEIGHTS or (
        kind == "path" and checkpoint.architecture in (None, "moemae_landsat")
    )  # the authors' files and S exports are the published model's architecture
    label = "MoE-MAE S (published weights)" if name == MOEMAE_WEIGHTS else name
    source, _ = sample_time(checkpoint.hour_encoding, time_source)
    return EncoderSpec(
        name,
        MOEMAE_WEIGHTS if published else None,
        label,
        tuple(pools),
        checkpoint.provenance.sha256,
        checkpoint=checkpoint,
        time_source=source,
    )


def _holds_moemae_weights(path: Path) -> bool:
    """Whether a weights file holds MoE-MAE weights: the authors' layout, or this package's (its
    blocks have mixture-of-experts keys)."""
    state = unwrap_checkpoint(read_checkpoint(path))
    return is_upstream_state_dict(state) or any(".moe." in k for k in state)


# --------------------------------------------------------------------------- cache
def _cache_problem(path: Path, settings: dict[str, Any]) -> str | None:
    """Why the cached (split, pool) directory ``path`` cannot be reused, or None if it can."""
    sums = path / CHECKSUMS
    if not sums.is_file():
        return "incomplete" if path.exists() else None
    try:
        record = json.loads(sums.read_text())
        expected = record["sha256"]
        recorded = dict(record.get("settings") or {})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return f"{sums} is unreadable"
    changed = sorted(k for k in {*recorded, *settings} if recorded.get(k) != settings.get(k))
    if changed:
        return f"made with other {', '.join(changed)}"
    if not isinstance(expected, dict) or sorted(expected) != _files(path):
        return f"the files of {path} are not those {sums} lists"
    for name, digest in expected.items():
        if file_sha256(path / name) != digest:
            return f"{path / name} does not match its checksum (corrupted)"
    return None


def _files(path: Path) -> list[str]:
    """The files of an embedding directory (features, labels, ids, manifest), sorted."""
    return sorted(p.name for p in path.iterdir() if p.is_file() and p.name != CHECKSUMS)


def _write_checksums(path: Path, settings: dict[str, Any]) -> None:
    record = {"settings": settings, "sha256": {n: file_sha256(path / n) for n in _files(path)}}
    with atomic_path(path / CHECKSUMS) as partial:
        partial.write_text(json.dumps(record, indent=2) + "\n")


def _subset(dataset: Dataset, limit: int | None) -> Dataset:
    """At most ``limit`` samples spread evenly over the split (all classes of sorted splits)."""
    n = len(dataset)  # type: ignore[arg-type]
    if limit is None or limit >= n:
        return dataset
    return Subset(dataset, np.unique(np.linspace(0, n - 1, limit).astype(int)).tolist())


def _ids_digest(dataset: Dataset) -> str:
    """SHA-256 of the ordered sample ids of a split (or subset)."""
    if isinstance(dataset, Subset):
        ids = [dataset.dataset.ids[i] for i in dataset.indices]  # type: ignore[attr-defined]
    else:
        ids = list(dataset.ids)  # type: ignore[attr-defined]
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


@dataclass
class _Context:
    """Settings shared by every (dataset, encoder) of one evaluation."""

    cache_dir: Path
    limit: int | None
    batch_size: int
    num_workers: int
    device: str | None
    download: bool
    on_error: OnError
    progress: bool
    log: Callable[[str], None]


def _embeddings(
    spec: EncoderSpec,
    dataset: str,
    root: Path,
    split: str,
    ctx: _Context,
    encoder: list[nn.Module],
) -> dict[str, Embeddings]:
    """``{pool: Embeddings}`` of one split, from the cache or extracted (and cached)."""
    suffix = f"-limit{ctx.limit}" if ctx.limit is not None else ""
    out_dir = ctx.cache_dir / spec.cache_name / f"{dataset}{suffix}"
    datamodule = DATASETS[dataset].datamodule_class()(
        root=root, download=ctx.download, on_error=ctx.on_error, **spec.dataset_kwargs(dataset)
    )
    data = _subset(datamodule.dataset_class(split=split, **datamodule.kwargs), ctx.limit)
    settings = {
        **spec.settings(dataset),
        "dataset": dataset,
        "root": str(Path(root).resolve()),
        "split": split,
        "ids_sha256": _ids_digest(data),
        "on_error": ctx.on_error,
        "limit": ctx.limit,
    }
    found: dict[str, Embeddings] = {}
    todo = []
    for pool in spec.pools:
        path = embedding_dir(out_dir, split, pool)
        problem = _cache_problem(path, {**settings, "pool": pool})
        if problem is None and (path / CHECKSUMS).is_file():
            found[pool] = load_embeddings(path)
            continue
        if problem is not None:
            ctx.log(f"cache {path}: {problem}; recomputing")
        todo.append(pool)
    if not todo:
        ctx.log(f"{spec.label} {dataset} {split}: cached embeddings {', '.join(found)} reused")
        return found
    base = data.dataset if isinstance(data, Subset) else data
    classes = list(getattr(base, "classes", []))
    # a subset may miss classes: the manifest keeps the dataset's own count
    manifest: dict[str, Any] = {"encoder": spec.name, "settings": settings}
    if classes:
        manifest.update(num_classes=len(classes), classes=classes)
    if not encoder:
        ctx.log(f"loading encoder {spec.label}")
        encoder.append(spec.build())
    extracted = extract_embeddings(
        encoder[0],
        data,
        split,
        pools=todo,
        out_dir=out_dir,
        batch_size=ctx.batch_size,
        num_workers=ctx.num_workers,
        device=ctx.device,
        transform=spec.transform(),
        progress=ctx.progress,
        manifest=manifest,
        overwrite=True,  # only unusable cache folders are embedded again
    )
    for pool, emb in extracted.items():
        assert emb.path is not None
        _write_checksums(emb.path, {**settings, "pool": pool})
    return {**found, **extracted}


# --------------------------------------------------------------------------- evaluation
@dataclass
class EvaluationRow:
    """One (dataset, encoder, embedding) result: measured, published and their difference."""

    dataset: str
    encoder: str
    label: str
    pool: str
    measured: dict[str, float]
    paper: dict[str, float]
    n_train: int
    n_test: int
    seconds: float
    #: what the embedding is, as the tables name it
    pool_label: str = ""
    #: what the embeddings depend on (weights digest, preprocessing, metadata rule)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def difference(self) -> dict[str, float]:
        """``measured - paper`` for the metrics the paper publishes."""
        return {k: self.measured[k] - v for k, v in self.paper.items() if k in self.measured}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, the difference included."""
        return {
            "dataset": self.dataset,
            "encoder": self.encoder,
            "label": self.label,
            "pool": self.pool,
            "embedding": self.pool_label or POOL_LABELS.get(self.pool, self.pool),
            "settings": self.settings,
            "measured": self.measured,
            "paper": self.paper,
            "difference": self.difference,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "seconds": self.seconds,
        }


def evaluate(
    encoders: Sequence[str | EncoderSpec],
    roots: Mapping[str, str | Path],
    cache_dir: str | Path,
    method: Method = "sklearn",
    limit: int | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | None = None,
    download: bool = False,
    on_error: OnError = "raise",
    time_source: TimeSource | None = None,
    seed: int = 0,
    allow_overlap: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
    **probe_kwargs: Any,
) -> list[EvaluationRow]:
    """Evaluate ``encoders`` on the datasets of ``roots`` with the paper's protocol.

    Args:
        encoders: names (see the module docstring) or resolved specs.
        roots: ``{"bigearthnet_ls" | "eurosat_ls": dataset root}``.
        cache_dir: where embeddings are cached (reused when their checksums and settings match).
        method: ``"sklearn"`` (the paper's probe) or ``"torch"`` (the same objective, streamed;
            for all-token features at full scale).
        limit: at most this many samples per split (a quick check; spread evenly over the split).
        batch_size, num_workers, device: embedding extraction (device: CUDA when available).
        download: download missing datasets.
        on_error: ``"raise"`` or ``"skip"`` unreadable samples (and samples without labels).
        time_source: the samples' time for MoE-MAE encoders named by a string (None: what their
            weights were trained with; see the module docstring).
        seed: probe seed.
        allow_overlap: probe even if train and test share patches (a warning instead of an error).
        progress: progress bars while embedding, elapsed time while probing.
        log: where progress lines go.
        **probe_kwargs: more probe options (e.g. ``max_iter``).

    Returns:
        one row per (dataset, encoder, embedding), in that order.
    """
    for dataset in roots:
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be at least 2 samples per split, got {limit}")
    specs = [
        e if isinstance(e, EncoderSpec) else resolve_encoder(e, time_source=time_source)
        for e in encoders
    ]
    ctx = _Context(
        Path(cache_dir), limit, batch_size, num_workers, device, download, on_error, progress, log
    )
    rows: list[EvaluationRow] = []
    for spec in specs:
        encoder: list[nn.Module] = []  # built on the first cache miss only
        for dataset, root in roots.items():
            train = _embeddings(spec, dataset, Path(root), "train", ctx, encoder)
            test = _embeddings(spec, dataset, Path(root), "test", ctx, encoder)
            for pool in spec.pools:
                x = train[pool].features
                log(f"{spec.label} {dataset} {pool}: {method} probe on {x.shape[0]} x {x.shape[1]}")
                start = time.perf_counter()
                kwargs = {"progress": progress, **probe_kwargs}
                if method == "torch":
                    kwargs.setdefault("device", device)
                measured = probe_embeddings(
                    train[pool], test[pool], method, seed, allow_overlap, **kwargs
                )
                seconds = time.perf_counter() - start
                log(f"{spec.label} {dataset} {pool}: done in {seconds:.1f} s")
                rows.append(
                    EvaluationRow(
                        dataset,
                        spec.name,
                        spec.label,
                        pool,
                        measured,
                        published_values(dataset, spec.paper_key, pool),
                        len(train[pool]),
                        len(test[pool]),
                        seconds,
                        spec.pool_label(pool),
                        dict(train[pool].manifest.get("settings") or {}),
                    )
                )
        del encoder
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def format_evaluation(rows: Sequence[EvaluationRow]) -> str:
    """Markdown: one table per dataset, a row per (encoder, embedding, metric) with the measured
    value, the paper's and ``measured - paper``."""
    parts = []
    for dataset, info in DATASETS.items():
        title, metrics = info.title, info.metrics
        mine = [r for r in rows if r.dataset == dataset]
        if not mine:
            continue
        n = f"{mine[0].n_train} train / {mine[0].n_test} test patches"
        lines = [
            f"### {title} (test split; {n})",
            "",
            "| Encoder | Embedding | Metric | Measured | Paper | Difference |",
            "|---|---|---|---:|---:|---:|",
        ]
        for r in mine:
            diff = r.difference
            shown = [m for m in metrics if m in r.measured or m in r.paper]
            shown += [m for m in r.paper if m not in shown]
            for m in shown:
                measured = f"{r.measured[m]:.3f}" if m in r.measured else ""
                paper = f"{r.paper[m]:.3f}" if m in r.paper else "–"
                delta = f"{diff[m]:+.3f}" if m in diff else ""
                embedding = r.pool_label or POOL_LABELS.get(r.pool, r.pool)
                lines.append(
                    f"| {r.label} | {embedding} | {METRIC_LABELS[m]} "
                    f"| {measured} | {paper} | {delta} |"
                )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def save_evaluation(rows: Sequence[EvaluationRow], out_dir: str | Path, **info: Any) -> Path:
    """Write ``out_dir/evaluation.json`` (rows and ``info``) and ``evaluation.md``; returns the
    JSON path. Each file appears complete or not at all (written aside, then renamed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**info, "results": [r.as_dict() for r in rows]}
    files = {
        out / "evaluation.json": json.dumps(payload, indent=2) + "\n",
        out / "evaluation.md": format_evaluation(rows) + "\n",
    }
    for path, text in files.items():
        with atomic_path(path) as partial:
            partial.write_text(text)
    return out / "evaluation.json"
