"""The paper's linear-probe evaluation for a set of encoders, beside the published values.

For every (dataset, encoder): frozen embeddings of the train and test splits (cached on disk and
verified), the paper's probe (scikit-learn SAG logistic regression, one-vs-rest for BigEarthNet-L's
19 labels) fitted on train, the paper's metrics on test, and the published values of
:mod:`~torchgeo_moemae.probe.published` with the difference ``measured - paper``.

Encoders are named by a string:

* one of this package's weights names, an export folder or a checkpoint file (the authors'
  ``.pth``): the MoE-MAE encoder, fed 40x40 patches z-scored with the BigEarthNet-L statistics
  (the published weights' ``transforms``; also on EuroSAT-L) and the batch metadata; embeddings
  ``"cls"``, ``"all"`` and ``"avg"`` (:class:`~torchgeo_moemae.probe.Featurizer`);
* a TorchGeo weights name such as ``ResNet18_Weights.LANDSAT_OLI_SR_MOCO``: TorchGeo's model with
  those weights, fed as Landsat-Bench evaluates them: surface-reflectance DN mapped linearly from
  reflectance [0, 0.3] to [0, 1] (SSL4EO-L's 8-bit scaling followed by the entry's division by 255)
  and resized to 224x224; one embedding, the model's pooled features (``"cls"``: global average
  for ResNets, CLS token for ViTs).

Cache: ``cache_dir/<encoder>/<dataset>[-limit<N>]/<split>_<pool>/`` (the layout of
:func:`~torchgeo_moemae.probe.extract_embeddings`) plus ``checksums.json``: the SHA-256 of every
file and the settings that produced them. A directory is reused only when both match, so an
interrupted run resumes where it stopped and a corrupted or stale file is recomputed.
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
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from ..bands import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD, PATCH_SIZE
from ..outputs import atomic_path
from ..transforms import Normalize
from ..utils import file_sha256
from ..vocabulary import (
    DATASETS,
    EXPORT_WEIGHTS_FILENAME,
    PAPER_POOLS,
    POOL_LABELS,
    weights_kind,
)
from .api import Method, probe_embeddings
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

#: Input size of TorchGeo's SSL4EO-L models.
TORCHGEO_INPUT_SIZE = 224
#: Landsat Collection 2 Level-2 surface-reflectance scale and offset: reflectance = DN * s + o.
_SR_SCALE, _SR_OFFSET = 2.75e-5, -0.2
#: DN of reflectance 0 and 0.3, the range SSL4EO-L maps to 0..255.
_SSL4EO_L_DN_RANGE = ((0.0 - _SR_OFFSET) / _SR_SCALE, (0.3 - _SR_OFFSET) / _SR_SCALE)
CHECKSUMS = "checksums.json"


class ResizeImage(nn.Module):
    """Bilinearly resize a batch dict's ``image`` ``(B, C, H, W)`` to ``size x size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The batch with its image resized."""
        x = F.interpolate(batch["image"].float(), size=self.size, mode="bilinear")
        return {**batch, "image": x}


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder to evaluate: its name as given, what it is and how it is fed."""

    name: str
    torchgeo: bool
    #: the key of :data:`~torchgeo_moemae.probe.published.PUBLISHED` (None: nothing published)
    paper_key: str | None
    label: str
    #: embeddings this encoder is evaluated with
    pools: tuple[str, ...]
    #: the settings of the weights file (path, size, modification time) the cache must match
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def cache_name(self) -> str:
        """A folder name for this encoder's cache."""
        if not self.fingerprint.get("path"):
            return self.name
        digest = hashlib.sha1(self.fingerprint["path"].encode()).hexdigest()[:8]
        return f"{Path(self.name).name}-{digest}"

    def build(self) -> nn.Module:
        """The frozen encoder (weights downloaded or read once)."""
        if self.torchgeo:
            from torchgeo.models import get_model, get_weight

            weights = get_weight(self.name)
            return get_model(weights.meta["model"], weights=weights, num_classes=0)
        from ..models import create_encoder

        return create_encoder(None, self.name)

    def transform(self) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
        """The batch preprocessing of raw DN images (see the module docstring)."""
        if self.torchgeo:
            low, high = _SSL4EO_L_DN_RANGE
            return nn.Sequential(
                Normalize([low] * len(BANDS), [high - low] * len(BANDS)),
                ResizeImage(TORCHGEO_INPUT_SIZE),
            )
        return Normalize(BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD)


def resolve_encoder(name: str, pools: Sequence[str] = PAPER_POOLS) -> EncoderSpec:
    """What ``name`` is (see the module docstring); ``pools`` apply to MoE-MAE encoders.

    Raises:
        FileNotFoundError: ``name`` is neither a weights name nor an existing path.
    """
    for p in pools:
        check_pool(p)
    try:
        kind = weights_kind(name)
    except ValueError as err:
        raise FileNotFoundError(f"encoder not found: {err}") from None
    if kind == "torchgeo":
        from torchgeo.models import get_weight

        get_weight(name)  # a ValueError if TorchGeo has no such entry
        return EncoderSpec(name, True, name, BASELINE_NAMES.get(name, name), ("cls",))
    path = Path(name)
    if path.exists():
        from ..models.factory import export_architecture

        arch = export_architecture(path)
        weights = path / EXPORT_WEIGHTS_FILENAME if path.is_dir() else path
        stat = weights.stat() if weights.exists() else path.stat()
        fingerprint = {
            "path": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        # the authors' files and S exports are the published model's architecture
        key = MOEMAE_WEIGHTS if arch in (None, "moemae_landsat") else None
        return EncoderSpec(name, False, key, str(path), tuple(pools), fingerprint)
    if name == MOEMAE_WEIGHTS:
        return EncoderSpec(name, False, name, "MoE-MAE S (published weights)", tuple(pools))
    if kind == "entry":
        from ..models.weights import get_weight

        get_weight(name)  # a ValueError naming the valid names if it is not one
        return EncoderSpec(name, False, None, name, tuple(pools))
    raise FileNotFoundError(f"encoder {name} not found: no such file or folder")


# --------------------------------------------------------------------------- cache
def _cache_problem(path: Path, settings: dict[str, Any]) -> str | None:
    """Why the cached (split, pool) directory ``path`` cannot be reused, or None if it can."""
    sums = path / CHECKSUMS
    if not sums.is_file():
        return "incomplete" if path.exists() else None
    try:
        record = json.loads(sums.read_text())
        expected = record["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return f"{sums} is unreadable"
    if record.get("settings") != settings:
        return "made with other settings"
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


@dataclass
class _Context:
    """Settings shared by every (dataset, encoder) of one evaluation."""

    cache_dir: Path
    limit: int | None
    batch_size: int
    num_workers: int
    device: str | None
    download: bool
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
    settings = {
        "encoder": spec.name,
        "weights_file": spec.fingerprint,
        "dataset": dataset,
        "root": str(Path(root).resolve()),
        "split": split,
        "limit": ctx.limit,
        "patch_size": PATCH_SIZE,
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
    datamodule = DATASETS[dataset].datamodule_class()(
        root=root, patch_size=PATCH_SIZE, download=ctx.download
    )
    data = datamodule.dataset_class(split=split, **datamodule.kwargs)
    classes = list(getattr(data, "classes", []))
    # a subset may miss classes: the manifest keeps the dataset's own count
    manifest: dict[str, Any] = {"encoder": spec.name}
    if classes:
        manifest.update(num_classes=len(classes), classes=classes)
    if not encoder:
        ctx.log(f"loading encoder {spec.label}")
        encoder.append(spec.build())
    extracted = extract_embeddings(
        encoder[0],
        _subset(data, ctx.limit),
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
    specs = [e if isinstance(e, EncoderSpec) else resolve_encoder(e) for e in encoders]
    ctx = _Context(Path(cache_dir), limit, batch_size, num_workers, device, download, progress, log)
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
                lines.append(
                    f"| {r.label} | {POOL_LABELS.get(r.pool, r.pool)} | {METRIC_LABELS[m]} "
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
