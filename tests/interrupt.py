"""A real Ctrl-C in the middle of a ``moemae`` (or ``torchgeo``) command: the tests' one harness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: the child: ``target`` runs ``calls`` times, then the process announces it and waits for the
#: signal
_CHILD = """
import importlib, pathlib, sys, time
entry, module, qualname, ready, calls = sys.argv[1:6]
owner = importlib.import_module(module)
*parents, name = qualname.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)
done = []
def wait_for_sigint(*args, **kwargs):
    result = original(*args, **kwargs)
    done.append(True)
    if len(done) == int(calls):
        pathlib.Path(ready).touch()
        time.sleep(120)
    return result
setattr(owner, name, wait_for_sigint)
main_module, main_name = entry.split(":")
sys.exit(getattr(importlib.import_module(main_module), main_name)(sys.argv[6:]))
"""


def sigint_after(
    target: str,
    argv: list[str],
    ready: Path,
    mid_work: Callable[[], None] | None = None,
    sig: int = signal.SIGINT,
    calls: int = 1,
    entry: str = "torchgeo_moemae.cli:main",
    cwd: Path | None = None,
) -> tuple[int, str]:
    """Run ``moemae argv`` in a subprocess and send it SIGINT once ``target`` has returned.

    Args:
        target: ``"module:function"`` or ``"module:Class.method"`` after which the signal comes.
        argv: the command line after ``moemae``.
        ready: a file the child creates when ``target`` has returned (must not exist).
        mid_work: called before the signal, to check the state of the interrupted work.
        sig: another signal instead (``signal.SIGKILL``: a killed process).
        calls: the signal comes after the ``calls``-th return of ``target``.
        entry: ``"module:function"`` of the command, called with ``argv``
            (``"torchgeo.main:main"``: ``torchgeo argv``).
        cwd: the working directory of the command.

    Returns:
        the exit code and what the command printed on stderr.
    """
    module, qualname = target.split(":")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, entry, module, qualname, str(ready), str(calls), *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # one thread, as in the tests' own process: the same arithmetic, bit for bit
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"{target} never returned"
            time.sleep(0.1)
        if mid_work is not None:
            mid_work()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err
