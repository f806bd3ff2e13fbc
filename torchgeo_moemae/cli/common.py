"""What every ``moemae`` command shares: threads, one-line user errors, datasets, progress bars.

A command module uses it like this::

    from .common import add_dataset_arguments, make_datamodule, progress

    def configure_parser(parser):          # --threads and --debug are already there
        add_weights_arguments(parser)      # --model --weights --random-init
        add_dataset_arguments(parser)      # --dataset --root --download --on-error --max-fill-fraction
        add_loader_arguments(parser)       # --batch-size --num-workers --device
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
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import INPUT_ERRORS, UntrainedWeightsWarning
from ..vocabulary import DATASETS, TIME_SOURCES, sample_time, weights_kind

__all__ = [
    "MAX_DEFAULT_THREADS",
    "USER_ERRORS",
    "CommandError",
    "add_common_arguments",
    "add_dataset_arguments",
    "add_loader_arguments",
    "add_overwrite_argument",
    "add_sample_arguments",
    "add_weights_arguments",
    "check_dataset_root",
    "check_input",
    "check_loader",
    "check_weights",
    "default_threads",
    "default_workers",
    "make_datamodule",
    "model_from_args",
    "one_line",
    "progress",
    "run_command",
    "sample_time_for",
    "split_names",
]

if TYPE_CHECKING:
    from ..models import Provenance

T = TypeVar("T")

#: ``--threads`` default: the physical cores, at most this many (more rarely helps these small models).
MAX_DEFAULT_THREADS = 8


class CommandError(Exception):
    """A user error a command reports in one line (exit code 2)."""


#: Exceptions reported as one line: OSError covers missing files, permissions and read-only
#: folders; ValueError covers bad arguments, unreadable checkpoints and weights of the wrong size.
USER_ERRORS: tuple[type[BaseException], ...] = (CommandError, *INPUT_ERRORS)


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


def add_weights_arguments(parser: argparse.ArgumentParser, mae: bool = False) -> None:
    """``--model``, ``--weights``, ``--random-init`` (checked by :func:`check_weights`).

    ``mae``: the command needs the full MAE (encoder and decoder), not only the encoder.
    """
    parser.add_argument(
        "--model",
        help="S, XS, XXS or a moemae_landsat* timm name"
        + ("" if mae else ", or any timm model")
        + " (default: the architecture the weights record, else S)",
    )
    parser.add_argument(
        "--weights",
        help=(
            "full-MAE weights: an export folder (its mae.safetensors), mae.safetensors or the "
            "authors' .pth"
            if mae
            else "encoder weights: an export folder, .safetensors, the authors' .pth or a weights "
            "name (MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS: the published weights)"
        ),
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="use a randomly initialised model on purpose (a baseline or a demo; without --weights)",
    )


def check_weights(args: argparse.Namespace) -> None:
    """``--weights`` names an existing path or a weights entry of this package, or
    ``--random-init`` asks for random weights on purpose: the outputs of a random model look like
    real ones but mean nothing, so they are never made silently."""
    if args.weights is None:
        if not args.random_init:
            raise CommandError(
                "no --weights: pass --weights (an export folder, .safetensors, the authors' .pth or "
                "a weights name such as MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS), or "
                "--random-init to use a randomly initialised model on purpose"
            )
        return
    if args.random_init:
        raise CommandError("--random-init and --weights exclude each other")
    try:
        kind = weights_kind(args.weights)
    except ValueError as err:
        raise CommandError(f"--{err}") from None
    if kind == "path":
        check_input(Path(args.weights), "--weights")
    elif kind == "torchgeo":
        raise CommandError(
            f"--weights {args.weights}: a TorchGeo weights entry, not MoE-MAE weights; compare "
            "TorchGeo's models with `moemae evaluate --encoder`"
        )


def model_from_args(args: argparse.Namespace, mae: bool = False) -> tuple[Any, Provenance]:
    """The model of :func:`add_weights_arguments`' options (the full MAE with ``mae``, else the
    encoder) and where its weights came from
    (:func:`~torchgeo_moemae.models.factory.load_model`)."""
    from ..models.factory import load_model

    return load_model(args.model, args.weights, mae)


def add_loader_arguments(
    parser: argparse.ArgumentParser, batch_size: int = 256, workers: bool = True
) -> None:
    """``--batch-size``, ``--num-workers`` (unless not ``workers``) and ``--device``.

    ``--device`` defaults to None: CUDA when present, else the CPU
    (:func:`~torchgeo_moemae.utils.default_device`).
    """
    parser.add_argument(
        "--batch-size", type=int, default=batch_size, help="images per batch (default: %(default)s)"
    )
    if workers:
        parser.add_argument(
            "--num-workers",
            type=int,
            default=default_workers(),
            help="data-loader worker processes (default: from the core count, %(default)s)",
        )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def check_loader(args: argparse.Namespace) -> None:
    """The values of :func:`add_loader_arguments` are usable."""
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be positive, got {args.batch_size}")
    if getattr(args, "num_workers", 0) < 0:
        raise CommandError(f"--num-workers must be 0 or more, got {args.num_workers}")


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
        help="CPU threads of torch and scikit-learn (0: their defaults; default: the physical "
        f"cores, at most {MAX_DEFAULT_THREADS})"
        if nested
        else "CPU threads of torch and scikit-learn (0: their defaults; default: %(default)s)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default if nested else False,
        help="show the full traceback of an error",
    )


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--root``, ``--download``, ``--on-error``, ``--max-fill-fraction``,
    ``--time-source``."""
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="bigearthnet_ls")
    parser.add_argument(
        "--root", type=Path, default=Path("data"), help="dataset root (default: %(default)s)"
    )
    parser.add_argument("--download", action="store_true", help="download the dataset if missing")
    parser.add_argument(
        "--max-fill-fraction",
        type=float,
        default=None,
        metavar="F",
        help="leave out samples whose fraction of fill pixels (DN 0) exceeds F (default: keep all)",
    )
    add_sample_arguments(parser)


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """``--on-error`` and ``--time-source``: how samples are read, for every dataset."""
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="unreadable or missing samples: stop (raise, default) or leave them out (skip)",
    )
    parser.add_argument(
        "--time-source",
        choices=("auto", *TIME_SOURCES),
        default="auto",
        help="BigEarthNet-L samples' time: json (the label JSON's acquisition time), "
        "authors_filename (the authors' parse of the patch id) or auto (default): what the weights "
        "were trained with (the authors' weights: authors_filename; others: json)",
    )


def sample_time_for(args: argparse.Namespace, model: Any = None) -> dict[str, str]:
    """The samples' time source for ``model``'s weights and the hour rule to match, set on its
    MoE-MAE encoder (:func:`~torchgeo_moemae.vocabulary.sample_time`; ``--time-source`` other
    than ``auto`` chooses the source): the fields to record with the outputs ({} for a dataset
    without metadata)."""
    from ..models import MoEMAEEncoder

    if not DATASETS[args.dataset].metadata:
        return {}
    encoder = getattr(model, "encoder", model)
    moemae = isinstance(encoder, MoEMAEEncoder)
    source, hour = sample_time(
        encoder.hour_encoding if moemae else "utc",
        None if args.time_source == "auto" else args.time_source,
    )
    if moemae:
        encoder.hour_encoding = hour
    return {"time_source": source, "hour_encoding": hour}


def make_datamodule(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The datamodule of :func:`add_dataset_arguments`' options; ``kwargs`` go to it too
    (``time_source``, None for ``--time-source``'s, only to a dataset whose samples have a time)."""
    info = DATASETS[args.dataset]
    source = kwargs.pop("time_source", None) or args.time_source
    if info.metadata and source != "auto":
        kwargs["time_source"] = source
    options: dict[str, Any] = {
        "root": args.root,
        "download": args.download,
        "on_error": args.on_error,
        "max_fill_fraction": args.max_fill_fraction,
        **kwargs,
    }
    return info.datamodule_class()(**options)


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """A tqdm progress bar over ``iterable`` (on stderr; ``kwargs`` go to tqdm)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def run_command(
    run: Callable[[argparse.Namespace], int | None],
    args: argparse.Namespace,
    check: Callable[[argparse.Namespace], None] | None = None,
) -> int:
    """Check the arguments (``check``, before torch is imported), set the threads (torch's, and
    the OpenMP and BLAS pools scikit-learn uses, for the command), run the command; report
    :data:`USER_ERRORS` in one line (exit 2), and the package's warnings about the user's inputs
    (:class:`~torchgeo_moemae.errors.UntrainedWeightsWarning`) in one line."""
    try:
        # catch_warnings restores the previous showwarning
        with warnings.catch_warnings(), contextlib.ExitStack() as limits:
            warnings.showwarning = _warning_lines(args.command, warnings.showwarning)
            if check is not None:
                check(args)
            if args.threads > 0:
                import torch
                from threadpoolctl import threadpool_limits

                torch.set_num_threads(args.threads)
                # scikit-learn's OpenMP loops spin-wait: on a busy 2-core machine a 1000-point
                # t-SNE took 42 s on 2 threads, 5 s on 1
                limits.enter_context(threadpool_limits(args.threads))
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


def _warning_lines(command: str, show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` printing an input warning as ``moemae <command>: warning: ...``
    (not Python's two lines naming the package's source line); other warnings go to ``show``."""

    def showwarning(
        message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
    ) -> None:
        if issubclass(category, UntrainedWeightsWarning):
            print(f"moemae {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    return showwarning


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

    message = re.sub(r"\b(?P<name>[a-z_]+)=(?P<value>'[^']*'|True)", option, message)
    # "pass --overwrite (overwrite=True)" names the option twice once the keyword is the flag
    return re.sub(r"(--[a-z-]+(?: [^\s()]+)?) \(\1\)", r"\1", message)
