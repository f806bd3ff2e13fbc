"""A real Ctrl-C in the middle of a ``moemae`` command: the tests' one harness for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: the child: ``target`` runs, then the process announces it and waits for the signal
_CHILD = """
import importlib, pathlib, sys, time
from torchgeo_moemae.cli import main
module, qualname, ready = sys.argv[1:4]
owner = importlib.import_module(module)
*parents, name = qualname.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)
def wait_for_sigint(*args, **kwargs):
    result = original(*args, **kwargs)
    pathlib.Path(ready).touch()
    time.sleep(120)
    return result
setattr(owner, name, wait_for_sigint)
sys.exit(main(sys.argv[4:]))
"""


def sigint_after(
    target: str,
    argv: list[str],
    ready: Path,
    mid_work: Callable[[], None] | None = None,
    sig: int = signal.SIGINT,
) -> tuple[int, str]:
    """Run ``moemae argv`` in a subprocess and send it SIGINT once ``target`` has returned.

    Args:
        target: ``"module:function"`` or ``"module:Class.method"`` after which the signal comes.
        argv: the command line after ``moemae``.
        ready: a file the child creates when ``target`` has returned (must not exist).
        mid_work: called before the signal, to check the state of the interrupted work.
        sig: another signal instead (``signal.SIGKILL``: a killed process).

    Returns:
        the exit code and what the command printed on stderr.
    """
    module, qualname = target.split(":")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, module, qualname, str(ready), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
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
