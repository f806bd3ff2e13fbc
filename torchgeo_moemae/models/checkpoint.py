"""Weights read once: a weights entry, a checkpoint file, an export folder or a state dict.

A :class:`Checkpoint` (built by :meth:`Checkpoint.from_path`, :meth:`Checkpoint.from_entry` or
:meth:`Checkpoint.from_state_dict`; :func:`~torchgeo_moemae.models.load_weights` picks the one a
weights value needs) holds the state dict as read (any layout
:func:`~torchgeo_moemae.models.convert.checkpoint_filter_fn` converts), the architecture it records,
the hour rule its weights were trained with, and its :class:`Provenance`. Every loader (``timm.create_model(..., pretrained=True)``'s filter,
:func:`~torchgeo_moemae.models.get_model`, the tasks, export, ``moemae embed-scene``) goes through
this module, which imports no other loader (no registry, no factory). The file readers live here
too: :func:`read_checkpoint` (any weights file, verified) and :func:`read_lightning_checkpoint`.
A training checkpoint that records no training (:func:`untrained`) is named in an
:class:`~torchgeo_moemae.errors.UntrainedWeightsWarning` wherever it is read.

A weights entry is read from its ``url``, as TorchGeo's builders do: a Hugging Face Hub URL through
:func:`huggingface_hub.hf_hub_download` (its cache; ``HF_HUB_OFFLINE`` honoured), any other URL
(a mirror, a local file in tests) through torchvision's ``load_state_dict_from_url``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import torch
from huggingface_hub import hf_hub_download
from torchvision.models import _api as torchvision_api
from torchvision.models._api import WeightsEnum

from ..errors import CheckpointError, PretrainedWeightsError, UntrainedWeightsWarning
from ..utils import file_sha256
from ..vocabulary import EXPORT_CONFIG_FILENAME, EXPORT_WEIGHTS_FILENAME, MAE_FILENAME
from .convert import is_upstream_state_dict, unwrap_checkpoint
from .metadata import HourEncoding, check_hour_encoding

__all__ = [
    "HF_HUB_FILENAME",
    "HF_HUB_ID",
    "RANDOM_INIT",
    "Checkpoint",
    "Provenance",
    "Weights",
    "how_to_load",
    "hub_hint",
    "read_checkpoint",
    "read_lightning_checkpoint",
    "recorded_model_args",
    "untrained",
    "warn_if_untrained",
]

#: The authors' Hugging Face model repository.
HF_HUB_ID = "albughdadim/lightweight-metadata-aware-mixture-of-experts-mae-landsat"
#: Name of the authors' S checkpoint (timm also tries the ``.safetensors`` alternative first).
HF_HUB_FILENAME = "pretrained_S_best.pth"

_HUB_URL = re.compile(
    r"^https://(?:hf\.co|huggingface\.co)/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$"
)


@dataclass(frozen=True)
class Provenance:
    """Where a model's weights came from, for the record of every output.

    Attributes:
        source: the local file read (an export folder's ``model.safetensors``), the URL a weights
            entry was read from when no local file is known, ``"state dict"`` (in memory) or
            ``"random init"``.
        sha256: hex SHA-256 of the file read, when there is one.
        entry: the weights entry's full name (``"MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS"``).
    """

    source: str
    sha256: str | None = None
    entry: str | None = None

    @property
    def is_random_init(self) -> bool:
        """No weights were loaded."""
        return self.source == "random init"

    def __str__(self) -> str:
        parts = [self.entry, self.source, f"sha256 {self.sha256}" if self.sha256 else None]
        return ", ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready fields plus ``description`` (``str(self)``)."""
        return {
            "description": str(self),
            "source": self.source,
            "sha256": self.sha256,
            "entry": self.entry,
        }


#: The provenance of a randomly initialised model.
RANDOM_INIT = Provenance("random init")


@dataclass(frozen=True)
class Checkpoint:
    """What every loader needs from weights, read once.

    Attributes:
        state_dict: the weights as read (the authors', encoder or MAE layout).
        architecture: the timm name the weights record (a weights entry, an export folder), else None.
        hour_encoding: the hour rule the weights were trained with (``"authors"`` for the authors').
        provenance: where they came from.
    """

    state_dict: Mapping[str, Any]
    architecture: str | None
    hour_encoding: HourEncoding
    provenance: Provenance

    @classmethod
    def from_path(cls, path: str | Path) -> Checkpoint:
        """Read a folder written by ``moemae export``, a ``.safetensors`` file or a torch checkpoint.

        Raises:
            FileNotFoundError: if there is no such file or folder.
            CheckpointError: for an empty, damaged or unreadable file.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"weights not found: {path} (expected an export folder, a .safetensors/.pth file "
                "or a weights name such as 'MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS')"
            )
        recorded = recorded_model_args(path)
        file = path / EXPORT_WEIGHTS_FILENAME if path.is_dir() else path
        state_dict = read_checkpoint(file)
        return cls(
            state_dict=state_dict,
            architecture=recorded.get("architecture"),
            hour_encoding=recorded.get("hour_encoding") or state_dict_hour_encoding(state_dict),
            provenance=Provenance(str(file), file_sha256(file)),
        )

    @classmethod
    def from_entry(cls, weights: WeightsEnum) -> Checkpoint:
        """Read a weights entry from its ``url`` (see the module docstring).

        Raises:
            PretrainedWeightsError: if the weights can be neither found in the cache nor
                downloaded.
        """
        url, name = str(weights.url), str(weights.meta["model"])
        hub = _HUB_URL.match(url)
        try:
            if hub:
                file = Path(hf_hub_download(hub["repo"], hub["file"], revision=hub["rev"]))
                state_dict = read_checkpoint(file)
                provenance = Provenance(str(file), file_sha256(file), str(weights))
            else:  # a mirror, or a local file (TorchGeo's tests monkeypatch the url so)
                state_dict = torchvision_api.load_state_dict_from_url(
                    url, map_location="cpu", weights_only=True
                )
                warn_if_untrained(state_dict, url)
                provenance = Provenance(url, entry=str(weights))
        except OSError as err:  # offline without cache, network errors, missing entries
            raise PretrainedWeightsError(
                f"Could not load pretrained weights for {name!r} from {url}: "
                f"{str(err).rstrip('.')}. "
                f"{how_to_load(name)}{hub_hint() if hub else ''}."
            ) from err
        recorded = weights.meta.get("hour_encoding")
        return cls(
            state_dict=state_dict,
            architecture=name,
            hour_encoding=recorded or state_dict_hour_encoding(state_dict),
            provenance=provenance,
        )

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any]) -> Checkpoint:
        """Weights already in memory (any layout :func:`checkpoint_filter_fn` converts)."""
        return cls(
            state_dict=state_dict,
            architecture=None,
            hour_encoding=state_dict_hour_encoding(state_dict),
            provenance=Provenance("state dict"),
        )


#: Anything :func:`~torchgeo_moemae.models.load_weights` accepts.
Weights: TypeAlias = Checkpoint | WeightsEnum | str | Path | Mapping[str, Any]


def how_to_load(name: str) -> str:
    """The instructions every "could not load pretrained weights" error ends with."""
    return (
        f"Pass a local file: timm.create_model({name!r}, pretrained=True, "
        "pretrained_cfg_overlay=dict(file='/path/to/pretrained_S_best.pth, model.safetensors or "
        "an export folder')) (the authors' .pth training checkpoint, their state dict, or a folder "
        "written by `moemae export`)"
    )


def hub_hint() -> str:
    """How to get the authors' weights when the Hub cannot be reached."""
    return (
        " or allow the download (unset HF_HUB_OFFLINE) / pre-fill the cache with "
        f"`hf download {HF_HUB_ID}`"
    )


def _verify_zip(path: Path) -> None:
    """Check every record's CRC-32 of a torch zip checkpoint (``torch.load`` never does)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (damaged or truncated zip: {err})"
        ) from err
    if damaged is not None:
        raise CheckpointError(
            f"{path}: damaged checkpoint: record {damaged!r} fails its CRC-32 check, so its tensors "
            "are not what was saved; use another checkpoint (e.g. an earlier last.ckpt or best)"
        )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``.safetensors`` file, a folder holding ``model.safetensors``, or a torch checkpoint.

    Torch checkpoints are verified first: an empty file, a truncated or damaged zip (a record
    failing its CRC-32) and an unreadable pickle are refused in one line.

    Raises:
        FileNotFoundError: if there is no such file.
        CheckpointError: (a ValueError, one line naming the file) if it cannot be read as saved.
    """
    path = Path(path)
    if path.is_dir():
        path = path / EXPORT_WEIGHTS_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint (interrupted save?)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(path))
        except SafetensorError as err:
            raise CheckpointError(f"{path}: unreadable safetensors file ({err})") from err
    with path.open("rb") as file:
        is_zip = file.read(2) == b"PK"  # torch's zip format (a legacy pickle is read as is)
    if is_zip:
        _verify_zip(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or unsafe pickles
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: unreadable checkpoint ({message})") from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict")
    warn_if_untrained(checkpoint, path)
    return checkpoint


def untrained(checkpoint: Mapping[str, Any]) -> str | None:
    """What shows that a training checkpoint records no training, else None.

    A Lightning checkpoint at ``global_step`` 0 was saved before the first optimiser step. The
    authors' training loop saves ``best_train_loss`` only once an epoch's loss improved on its
    initial ``inf``, so a non-finite one (the ``nan`` of a format sample) means no epoch finished
    with a loss. A bare state dict records nothing either way (None).
    """
    if "pytorch-lightning_version" in checkpoint and checkpoint.get("global_step") == 0:
        return "a Lightning checkpoint at global_step 0"
    try:
        loss = float(checkpoint["best_train_loss"])
    except (KeyError, TypeError, ValueError):  # none, or not a number: not the authors' record
        return None
    return (
        None if math.isfinite(loss) else f"epoch {checkpoint.get('epoch')}, best_train_loss {loss}"
    )


def warn_if_untrained(checkpoint: Mapping[str, Any], source: str | Path) -> None:
    """Warn (one line naming ``source``) if ``checkpoint`` records no training (:func:`untrained`).

    Python shows a warning once per message and place, so a file read twice is named once.
    """
    reason = untrained(checkpoint)
    if reason is not None:
        warnings.warn(
            f"{source}: untrained weights, the checkpoint records no training ({reason}); "
            "results from it say nothing about pre-training",
            UntrainedWeightsWarning,
            stacklevel=2,  # one place: a file read twice is named once
        )


def recorded_model_args(path: str | Path) -> dict[str, Any]:
    """``model_args`` and ``architecture`` of the export folder ``path`` is (or is a file of); {} if none.

    Raises:
        ValueError: for a ``config.json`` that is not an export config.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / EXPORT_CONFIG_FILENAME
    if not config.is_file() or (
        path.is_file() and path.name not in (EXPORT_WEIGHTS_FILENAME, MAE_FILENAME)
    ):
        return {}
    try:
        record = json.loads(config.read_text())
        arch, args = record.get("architecture"), dict(record.get("model_args") or {})
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(
            f"{config} is not an export config (JSON with 'architecture'): {err}"
        ) from err
    if not isinstance(arch, str):
        raise ValueError(f"{config} has no 'architecture' string; re-export with `moemae export`")
    if "hour_encoding" in args:
        args["hour_encoding"] = check_hour_encoding(args["hour_encoding"])
    return {"architecture": arch, **args}


def state_dict_hour_encoding(state_dict: Mapping[str, Any]) -> HourEncoding:
    """``"authors"`` for the authors' layout (their loader kept the first digit of the hour), else ``"utc"``."""
    return "authors" if is_upstream_state_dict(unwrap_checkpoint(state_dict)) else "utc"


def read_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint (``.ckpt``) after verifying it (see :func:`read_checkpoint`).

    Returns:
        the checkpoint dict (``state_dict``, ``hyper_parameters``, ...), on the CPU.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        CheckpointError: (one line, naming ``path``) if the file is empty, damaged (a record fails
            its CRC-32), or not a Lightning checkpoint (for the authors' ``.pth`` it says how to
            load it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Lightning checkpoint not found: {path}")
    checkpoint = read_checkpoint(path)
    if "pytorch-lightning_version" in checkpoint and "state_dict" in checkpoint:
        return checkpoint
    if is_upstream_state_dict(unwrap_checkpoint(checkpoint)):
        raise CheckpointError(
            f"{path}: the authors' MoE-MAE checkpoint, not a Lightning one; load it with "
            f"timm.create_model('moemae_landsat', pretrained=True, "
            f"pretrained_cfg_overlay=dict(file='{path}')) or torchgeo_moemae.models.create_mae('S', "
            f"'{path}')"
        )
    raise CheckpointError(
        f"{path}: not a Lightning checkpoint (no 'pytorch-lightning_version'/'state_dict'; keys: "
        f"{sorted(checkpoint)[:5]})"
    )
