"""What the Landsat-Bench datasets share: arguments, download/extract, bad-sample and fill policy."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset
from torchgeo.datasets.utils import download_url, extract_archive

from ..outputs import atomic_path
from .utils import (
    InvalidSampleError,
    MissingSampleFileError,
    OnError,
    check_max_fill_fraction,
    fill_fraction,
    verify_md5,
    warn_skipped,
)

Transforms = Callable[[dict[str, Tensor]], dict[str, Tensor]]


class LandsatBenchDataset(NonGeoDataset, abc.ABC):
    """A split of a Landsat-Bench dataset: an archive extracted under ``root`` plus split files.

    Subclasses set the class attributes and implement :meth:`_list_samples` (split ids whose files
    exist) and :meth:`_load` (one validated sample).
    """

    #: base URL of the archive (and of the split files unless :attr:`split_url` is set)
    url: ClassVar[str]
    split_url: ClassVar[str | None] = None
    #: archive name, and the directory it extracts to under ``root``
    filename: ClassVar[str]
    directory: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    split_filenames: ClassVar[dict[str, str]]
    #: MD5 per downloaded file; None = unpublished (``checksum=True`` then warns). Overridable.
    md5s: ClassVar[dict[str, str | None]]
    #: band count of the files on disk
    num_bands: ClassVar[int]

    def __init__(
        self,
        root: str | Path,
        split: str,
        patch_size: int | None,
        transforms: Transforms | None,
        download: bool,
        checksum: bool,
        on_error: OnError,
        max_fill_fraction: float | None,
    ) -> None:
        """Validate arguments, make the data available, and index the split.

        With ``on_error="skip"`` or a ``max_fill_fraction``, every sample is read once here and
        the dropped ones are listed in :attr:`skipped` with their reason (and counted in a warning).

        Raises:
            ValueError: for an invalid argument, or a split file that lists no sample.
            DatasetNotFoundError: if the data is absent and ``download`` is False.
            MissingSampleFileError: (``on_error="raise"``) a listed sample has no file.
            InvalidSampleError: (``on_error="raise"`` with ``max_fill_fraction``) a sample is bad.
        """
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}, got {split!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be positive or None, got {patch_size}")
        self.root = root
        self.split = split
        self.patch_size = patch_size
        self.transforms = transforms
        self.download = download
        self.checksum = checksum
        self.on_error = on_error
        self.max_fill_fraction = check_max_fill_fraction(max_fill_fraction)

        self._verify()
        ids, missing = self._list_samples()
        if not ids and not missing:
            raise ValueError(f"{self.split_path}: the {split} split file lists no sample")
        if missing and on_error == "raise":
            first = next(iter(missing.values()))
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MissingSampleFileError(f"{first}{more}; pass on_error='skip' to drop them")
        #: id -> reason for every sample dropped by ``on_error="skip"`` or ``max_fill_fraction``
        self.skipped: dict[str, str] = missing
        if on_error == "skip" or self.max_fill_fraction is not None:
            ids = self._screen(ids)
        warn_skipped(type(self).__name__, self.skipped, len(ids))
        #: sample ids of this split, in split-file order
        self.ids: list[str] = ids

    def _screen(self, ids: list[str]) -> list[str]:
        """Read every sample once; keep the good ones, recording the others in :attr:`skipped`."""
        kept = []
        for sample_id in ids:
            try:
                image = self._load(sample_id)["image"]
            except InvalidSampleError as err:
                if self.on_error == "raise":
                    raise
                self.skipped[sample_id] = str(err)
                continue
            if self.max_fill_fraction is not None:
                fraction = fill_fraction(image)
                if fraction > self.max_fill_fraction:
                    self.skipped[sample_id] = (
                        f"{sample_id}: {fraction:.1%} of the pixels are fill (DN 0), more than "
                        f"max_fill_fraction={self.max_fill_fraction}"
                    )
                    continue
            kept.append(sample_id)
        return kept

    def __len__(self) -> int:
        """Number of samples in the split."""
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Sample ``index``: ``image`` (7, P, P) float32 DN, ``label``, ``lat``/``lon``/``time``."""
        try:
            sample = self._load(self.ids[index])
        except InvalidSampleError as err:
            # found only now: with on_error="skip" the dataset reads every sample up front
            raise type(err)(f"{err}; pass on_error='skip' to leave such samples out") from err
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    @property
    def split_path(self) -> str:
        """Path of this split's split file."""
        return os.path.join(self.root, self.split_filenames[self.split])

    @abc.abstractmethod
    def _data_dirs(self) -> list[str]:
        """Directories whose presence means the archive is extracted."""

    @abc.abstractmethod
    def _list_samples(self) -> tuple[list[str], dict[str, str]]:
        """Ids of the split whose files exist, and ``{id: reason}`` for those missing a file."""

    @abc.abstractmethod
    def _load(self, sample_id: str) -> dict[str, Tensor]:
        """Read and validate one sample, raising :class:`InvalidSampleError` naming the file."""

    def _verify(self) -> None:
        """Find, else extract, else download the split files and the archive (torchgeo style)."""
        wanted = self.split_filenames[self.split]
        for split_file in self.split_filenames.values():
            # All splits at once so that setup() on several ranks never downloads concurrently.
            self._fetch(split_file, self.split_url or self.url, required=split_file == wanted)
        if all(os.path.isdir(d) for d in self._data_dirs()):
            return
        if os.path.isfile(os.path.join(self.root, self.filename)) or self.download:
            extract_archive(self._fetch(self.filename, self.url, required=True), self.root)
            return
        raise DatasetNotFoundError(self)

    def _fetch(self, filename: str, base_url: str, required: bool) -> str:
        """Local path of a top-level file, downloaded if absent and allowed, MD5-checked on request.

        Raises:
            DatasetNotFoundError: if a ``required`` file is absent and ``download`` is False.
            ConnectionError: (one line) if the file must be downloaded but ``HF_HUB_OFFLINE`` is
                set (the files are on the Hugging Face Hub) or the download fails.
        """
        path = os.path.join(self.root, filename)
        if not os.path.isfile(path):
            if not self.download:
                if required:
                    raise DatasetNotFoundError(self)
                return path
            url = base_url + filename
            if url.startswith(("http://", "https://")) and _hub_offline():
                raise ConnectionError(
                    f"{path} is missing and HF_HUB_OFFLINE is set, so {url} is not downloaded: "
                    f"unset HF_HUB_OFFLINE, or download it elsewhere and put it at {path}"
                )
            os.makedirs(self.root, exist_ok=True)
            # md5 is checked below rather than by download_url, so that files already on disk
            # (and those copied by a test's patched downloader) are verified the same way. The
            # file appears under its name only once complete.
            try:
                with atomic_path(Path(path)) as partial:
                    download_url(url, self.root, filename=partial.name)
            except OSError as err:  # urllib's URLError: no network, DNS, HTTP errors
                reason = getattr(err, "reason", None) or err
                raise ConnectionError(
                    f"could not download {url} ({reason}); check the connection, or download it "
                    f"elsewhere and put it at {path}"
                ) from err
        verify_md5(path, self.md5s.get(filename), self.checksum)
        return path


def _hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (read now, with huggingface_hub's notion of true)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
