"""Outputs a user can trust: checked before the work, written whole or not at all.

Every ``moemae`` command and every writer of the package follows one policy:

* :func:`check_output`, before any work: the output's folder is (or can be created as) a writable
  folder, the output is not a folder where a file is expected (or a file where a folder is), and an
  existing output is kept unless ``overwrite`` (``--overwrite``). A mistake is reported in one line
  in well under a second, not after hours of embedding.
* :func:`atomic_path`: the output is written under a hidden *partial* name next to it
  (``.<name>.<host>-<pid>-<random>.partial``) and moved into place with :func:`os.replace` only
  when complete; on an error or Ctrl-C the partial file (or folder) is removed, so no half-written
  output ever sits under any name.
* Partial files a killed process (``kill -9``, power loss) could not remove are removed by the
  next :func:`check_output` of an output in the same folder: a partial whose process is gone
  (same host, no such pid) is a leftover, one of a running process is left alone.

A leaf module: the command line imports it before torch, so these checks cost nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "OVERWRITE_HINT",
    "atomic_output",
    "atomic_path",
    "check_output",
    "partial_path",
    "provenance_record",
    "remove_outputs",
    "remove_stale_partials",
]

#: what an error about an existing output tells the user to do
OVERWRITE_HINT = (
    "pass --overwrite (overwrite=True) to replace what exists, or choose another output"
)

#: a partial name: .<output name>.<host hash>-<pid>-<random hex>.partial
_PARTIAL = re.compile(r"^\..+\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}\.partial$")


def _host() -> str:
    """A short, stable tag of this machine (partials of another host are never removed here)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def partial_path(path: str | Path) -> Path:
    """A fresh hidden partial name next to ``path`` (not created)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the partial files and folders in ``folder`` whose writing process is gone.

    Returns:
        the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    host = _host()
    for path in folder.glob(".*.partial"):
        match = _PARTIAL.match(path.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _alive(pid):
            _remove(path)
            removed.append(path)
    return removed


def remove_outputs(folder: str | Path, names: Sequence[str]) -> None:
    """Remove an earlier run's outputs ``names`` (files or folders) from ``folder``, in order.

    Each is first renamed to a partial name (atomic), so an interruption leaves the output whole
    or a leftover partial that the next :func:`check_output` in ``folder`` removes, never a half
    of it under its own name.
    """
    for name in names:
        path = Path(folder) / name
        if path.exists() or path.is_symlink():
            doomed = partial_path(path)
            os.replace(path, doomed)
            _remove(doomed)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(
    path: str | Path,
    *,
    folder: bool = False,
    overwrite: bool = False,
    contents: Sequence[str] = (),
    what: str = "output",
) -> Path:
    """Check, before any work, that ``path`` can be written; remove leftover partials next to it.

    Args:
        path: the output file (or folder, with ``folder``).
        folder: ``path`` is a folder.
        overwrite: an existing output may be replaced.
        contents: for a folder that may hold other files (e.g. an export folder): the names of
            the files the command writes in it; only those count as an existing output. Empty: the
            folder itself is the output.
        what: how the error messages call the output (e.g. ``"--out"``).

    Returns:
        ``path`` as a Path.

    Raises:
        NotADirectoryError: if a file stands where ``path``'s folder (or, with ``folder``, ``path``)
            must be.
        IsADirectoryError: if ``path`` is a folder but a file is expected.
        PermissionError: if the folder to write in is not writable.
        FileExistsError: if the output exists and not ``overwrite``.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise NotADirectoryError(f"{what} {path} is a file, expected a folder (or a new name)")
        if not folder and path.is_dir():
            raise IsADirectoryError(f"{what} {path} is a folder, expected a file name in a folder")
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise NotADirectoryError(
            f"{what} {path}: {parent} is a file, not a folder, so nothing can be written under it"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: folder {parent} is not writable")
    remove_stale_partials(path.parent)
    if folder:
        remove_stale_partials(path)
    existing = [path / name for name in contents] if folder and contents else [path]
    existing = [p for p in existing if p.exists() and not (folder and not contents and _empty(p))]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise FileExistsError(f"{what} {names} already {verb}; {OVERWRITE_HINT}")
    return path


def _empty(folder: Path) -> bool:
    return folder.is_dir() and not any(folder.iterdir())


def _publish(partial: Path) -> None:
    """Give a finished partial the permissions the umask gives new files (``tempfile`` and
    safetensors create 0600 files; folders made by ``mkdtemp`` are 0700)."""
    mask = _umask()
    if partial.is_dir():
        partial.chmod(0o777 & ~mask)
        for item in partial.iterdir():
            if item.is_file():
                item.chmod(0o666 & ~mask)
    else:
        partial.chmod(0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """A partial name to write ``path`` under; it replaces ``path`` only if the block succeeds.

    With ``folder`` the partial folder is created (write the files into it) and replaces the
    folder ``path`` as a whole; otherwise the partial file is not created (write it in the block).
    On any exception, ``KeyboardInterrupt`` included, the partial is removed and ``path`` keeps its
    previous content. Parent folders are created.

    Yields:
        the partial path (in ``path``'s folder, so the final rename never crosses file systems).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    if folder:
        partial.mkdir()
    try:
        yield partial
        _publish(partial)
        if folder and path.is_dir():
            # A folder cannot replace a non-empty one: set the old one aside (under a partial
            # name, so an interruption here leaves nothing the next run would keep) and drop it.
            old = partial_path(path)
            os.replace(path, old)
            os.replace(partial, path)
            _remove(old)
        else:
            os.replace(partial, path)
    finally:
        if partial.exists() or partial.is_symlink():
            _remove(partial)


@contextlib.contextmanager
def atomic_output(out_dir: str | Path) -> Iterator[Path]:
    """A partial folder whose files replace those of ``out_dir`` only if the block succeeds.

    Unlike ``atomic_path(folder=True)`` the other files of ``out_dir`` are kept: files are moved
    one by one with :func:`os.replace` (atomic per file) after the whole block has run; on error
    the partial folder is removed and ``out_dir`` keeps its previous files.

    Yields:
        the partial folder (inside ``out_dir``, so the moves never cross file systems).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = partial_path(out / out.name)
    staging.mkdir()
    try:
        yield staging
        _publish(staging)
        for item in sorted(staging.iterdir()):
            os.replace(item, out / item.name)
    finally:
        _remove(staging)


def provenance_record(weights: Any, model: str | None, **fields: Any) -> dict[str, Any]:
    """What made an output, for its record (manifest, GeoTIFF tags, probe JSON, export config).

    Args:
        weights: a :class:`~torchgeo_moemae.models.Provenance` (the weights entry, the file read
            and its SHA-256, or ``"random init"``), or a mapping already made by this function.
        model: the timm architecture.
        **fields: more fields (e.g. ``pool``).

    Returns:
        ``{"weights": {...}, "model": ..., **fields, "package": ..., "package_version": ...}``.
    """
    from . import __version__

    record = weights.to_dict() if hasattr(weights, "to_dict") else dict(weights)
    return {
        "weights": record,
        "model": model,
        **fields,
        "package": "torchgeo-moemae",
        "package_version": __version__,
    }
