"""time.sleep for Python processes that tests start under libfaketime (tests/support/clock_at.py).

This directory is put first on PYTHONPATH only for those processes. With
FAKETIME_DONT_FAKE_MONOTONIC=1, Debian's libfaketime 0.9.10 turns Python 3.11's
time.sleep (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)) into EINVAL; select() with a relative
timeout is left alone, so sleep waits on that instead (gunicorn's arbiter sleeps between checks
on its workers while it stops, our deadlock retry sleeps before trying again).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import select
import sys
import time


def _sleep(seconds: float, /) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        select.select([], [], [], remaining)  # retried after signals like time.sleep (PEP 475)


if "faketime" in os.environ.get("LD_PRELOAD", "") and os.environ.get(
    "FAKETIME_DONT_FAKE_MONOTONIC"
):
    time.sleep = _sleep


def _chain() -> None:
    """Run the sitecustomize this one hides, if there is one further down sys.path."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec and spec.loader:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_chain()
