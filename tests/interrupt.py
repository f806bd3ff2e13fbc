"""A real Ctrl-C in the middle of a ``moemae`` (or ``torchgeo``) command: the tests' one harness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: the child: ``target`` runs (its ``calls``-th call), then the process announces it and waits
#: for the signal
_CHILD = """
import importlib, pathlib, sys, time
entry, module, qualname, ready, calls = sys.argv[1:6]
entry_module, entry_name = entry.split(":")
main = getattr(importlib.import_module(entry_module), entry_name)
owner = importlib.import_module(module)
*parents, name = qualname.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)
count = [0]
def wait_for_sigint(*args, **kwargs):
    result = original(*args, **kwargs)
    count[0] += 1
    if count[0] == int(calls):
        pathlib.Path(ready).touch()
        time.sleep(120)
    return result
setattr(owner, name, wait_for_sigint)
sys.exit(main(sys.argv[6:]))
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
        calls: signal after this call of ``target`` (1: the first).
        entry: the command's ``module:function`` (``torchgeo.main:main`` for ``torchgeo``).
        cwd: the child's working directory.

    Returns:
        the exit code and what the command printed on stderr.
    """
    module, qualname = target.split(":")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, entry, module, qualname, str(ready), str(calls), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=cwd,
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
