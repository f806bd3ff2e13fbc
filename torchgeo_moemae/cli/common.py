"""What every ``moemae`` command shares: threads, one-line user errors, datasets, progress bars.

A command module uses it like this::

    from .common import add_dataset_arguments, make_datamodule, progress

    def configure_parser(parser):          # --threads and --debug are already there
        add_dataset_arguments(parser)      # --dataset --root --download --on-error --max-fill-fraction
        parser.add_argument("--out", type=Path, required=True)

    def run(args) -> int:                  # called through run_command: threads set, errors caught
        datamodule = make_datamodule(args, batch_size=64)
        for batch in progress(loader, desc="work"):
            ...
        return 0

A command may also define ``check(args)``: it runs before ``run`` and before torch is imported, so
that a wrong path or an output that cannot be written is reported in well under a second; it
validates the inputs (:func:`check_input`) and the outputs
(:func:`~torchgeo_moemae.outputs.check_output`: writable folder, not a folder where a file is
expected, an existing output kept unless ``--overwrite``).

User mistakes (:data:`USER_ERRORS`: a missing or unreadable file, a read-only output folder, weights
of the wrong size, a bad argument value, weights that cannot be fetched) print one line
``moemae <command>: error: ...`` and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import PretrainedWeightsError

__all__ = [
    "DATAMODULES",
    "MAX_DEFAULT_THREADS",
    "USER_ERRORS",
    "CommandError",
    "add_common_arguments",
    "add_dataset_arguments",
    "add_overwrite_argument",
    "check_dataset_root",
    "check_input",
    "check_weights",
    "default_threads",
    "default_workers",
    "make_datamodule",
    "one_line",
    "progress",
    "run_command",
    "split_names",
]

T = TypeVar("T")

#: ``--threads`` default: the physical cores, at most this many (more rarely helps these small models).
MAX_DEFAULT_THREADS = 8

#: ``--dataset`` name -> datamodule class path.
DATAMODULES = {
    "bigearthnet_ls": "torchgeo_moemae.datamodules.BigEarthNetLSDataModule",
    "eurosat_ls": "torchgeo_moemae.datamodules.EuroSATLSDataModule",
}


class CommandError(Exception):
    """A user error a command reports in one line (exit code 2)."""


#: Exceptions reported as one line: OSError covers missing files, permissions and read-only
#: folders; ValueError covers bad arguments, unreadable checkpoints and weights of the wrong size.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    OSError,
    ValueError,
    PretrainedWeightsError,
)


def _physical_cores() -> int | None:
    """Distinct (package, core) pairs of /proc/cpuinfo (None where it is unavailable)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    cores, package = set(), ""
    for line in lines:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "physical id":
            package = value
        elif key == "core id":
            cores.add((package, value))
    return len(cores) or None


def default_threads() -> int:
    """The physical cores this process may use, capped at :data:`MAX_DEFAULT_THREADS`."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    return max(1, min(_physical_cores() or usable, usable, MAX_DEFAULT_THREADS))


def default_workers() -> int:
    """Data-loader worker processes: one per usable core beyond the main process (at most 4).

    More workers than cores only adds contention (and torch's "suggested max number of worker"
    warning); on one or two cores the main process reads the data itself.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    return 0 if usable <= 2 else min(4, usable - 1)


def split_names(value: str, option: str, choices: Sequence[str] | None = None) -> list[str]:
    """The names of a comma-separated option (``--split train,test``), checked against ``choices``."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise CommandError(f"{option} names nothing")
    for name in names:
        if choices is not None and name not in choices:
            raise CommandError(f"{option} {name!r}: expected one of {', '.join(choices)}")
    return names


def check_input(path: Path, what: str, kind: str = "any") -> Path:
    """``path`` exists (``kind``: ``"file"``, ``"folder"`` or ``"any"``), else a one-line error."""
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if kind == "file" and not path.is_file():
        raise IsADirectoryError(f"{what} {path} is a folder, expected a file")
    if kind == "folder" and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, expected a folder")
    return path


#: file name endings that make a ``--weights`` value a path (not a weights entry name)
WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def check_weights(weights: str | Path | None, random_init: bool) -> None:
    """``--weights`` names an existing path (if it is one), or ``--random-init`` asks for random
    weights on purpose: embeddings of a random encoder look like real ones but mean nothing."""
    if weights is None:
        if not random_init:
            raise CommandError(
                "no --weights: pass --weights (an export folder, .safetensors, the authors' .pth or "
                "a weights name), or --random-init to use a randomly initialised encoder on purpose"
            )
        return
    if random_init:
        raise CommandError("--random-init and --weights exclude each other")
    path = Path(weights)
    if path.suffix in WEIGHTS_SUFFIXES or len(path.parts) > 1 or path.exists():
        check_input(path, "--weights")


def check_dataset_root(args: argparse.Namespace) -> None:
    """The ``--root`` of :func:`add_dataset_arguments` exists, unless ``--download`` creates it."""
    if not args.download:
        check_input(args.root, "--root", "folder")


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace existing outputs (default: keep them and stop before any work)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (default: keep them and stop before any work)",
    )


def add_common_arguments(parser: argparse.ArgumentParser, nested: bool = False) -> None:
    """``--threads`` and ``--debug`` (added to every command by :func:`torchgeo_moemae.cli.main`).

    ``--threads`` defaults to :func:`default_threads`; a command changes that with
    ``parser.set_defaults(threads=N)``. ``nested``: for the sub-subcommands of a command (e.g.
    ``moemae analyze experts``), so the options also work after them without overriding a value
    given before them.
    """
    default: Any = argparse.SUPPRESS
    parser.add_argument(
        "--threads",
        type=int,
        default=default if nested else default_threads(),
        help="torch CPU threads (0: torch's default; default: the physical cores, at most "
        f"{MAX_DEFAULT_THREADS})"
        if nested
        else "torch CPU threads (0: torch's default; default: %(default)s)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default if nested else False,
        help="show the full traceback of an error",
    )


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--root``, ``--download``, ``--on-error``, ``--max-fill-fraction``."""
    parser.add_argument("--dataset", choices=sorted(DATAMODULES), default="bigearthnet_ls")
    parser.add_argument(
        "--root", type=Path, default=Path("data"), help="dataset root (default: %(default)s)"
    )
    parser.add_argument("--download", action="store_true", help="download the dataset if missing")
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="unreadable or missing samples: stop (raise, default) or leave them out (skip)",
    )
    parser.add_argument(
        "--max-fill-fraction",
        type=float,
        default=None,
        metavar="F",
        help="leave out samples whose fraction of fill pixels (DN 0) exceeds F (default: keep all)",
    )


def make_datamodule(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The datamodule of :func:`add_dataset_arguments`' options; ``kwargs`` go to it too."""
    module, name = DATAMODULES[args.dataset].rsplit(".", 1)
    options: dict[str, Any] = {
        "root": args.root,
        "download": args.download,
        "on_error": args.on_error,
        "max_fill_fraction": args.max_fill_fraction,
        **kwargs,
    }
    return getattr(importlib.import_module(module), name)(**options)


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """A tqdm progress bar over ``iterable`` (on stderr; ``kwargs`` go to tqdm)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def run_command(
    run: Callable[[argparse.Namespace], int | None],
    args: argparse.Namespace,
    check: Callable[[argparse.Namespace], None] | None = None,
) -> int:
    """Check the arguments (``check``, before torch is imported), set the torch threads, run the
    command; report :data:`USER_ERRORS` in one line (exit 2)."""
    try:
        if check is not None:
            check(args)
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        return int(run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"moemae {args.command}: interrupted", file=sys.stderr)
        return 130  # the shell's code for a SIGINT
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"moemae {args.command}: error: {one_line(err, args)}", file=sys.stderr)
        return 2


def one_line(err: BaseException, args: argparse.Namespace) -> str:
    """``err``'s message on one line, as this command's user reads it.

    An error raised in a data-loader worker arrives with the worker's whole traceback in its
    message: only the original error's line is kept. A Python keyword hint such as
    ``on_error='skip'`` becomes the command's option (``--on-error skip``) where it has one.
    """
    message = str(err)
    if re.match(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal ", message):
        # torch: "Caught E in DataLoader worker process N.\nOriginal <traceback>...\nmod.E: text"
        last = [line for line in message.splitlines() if line and not line[0].isspace()][-1]
        message = last.split(": ", 1)[-1]
    message = " ".join(message.split()) or type(err).__name__

    def option(match: re.Match[str]) -> str:
        name, value = match["name"], match["value"]
        if not hasattr(args, name):
            return match[0]
        flag = "--" + name.replace("_", "-")
        return flag if value == "True" else f"{flag} {value.strip(chr(39))}"

    return re.sub(r"\b(?P<name>[a-z_]+)=(?P<value>'[^']*'|True)", option, message)
