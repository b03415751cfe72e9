"""`tuktuk serve`'s supervisor: the web server, the worker and the posting engine(s) as child
processes, each restarted if it dies, all stopped together.

Why not supervisord or honcho: supervisord is a daemon with its own configuration file and
control socket, one more thing to install and keep in step with our settings; honcho (Procfile)
stops everything when one process exits instead of restarting it. What we need is small: start
a few commands we build ourselves, restart one that exits, pass SIGTERM on.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# A child that keeps dying is restarted after 1 s, 2 s, 4 s ... at most this often.
MAX_RESTART_DELAY = 30.0
# A child that ran this long before dying counts as healthy again (its delay starts over).
HEALTHY_AFTER = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay: float = 1.0
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # exit codes, newest last

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)  # noqa: S603 - our own commands
        self.started_at = time.monotonic()
        self.restart_at = None
        logger.info("started %s (pid %s)", self.name, self.process.pid)


def tuktuk_command(*args: str) -> list[str]:
    """A `tuktuk` management command run by this Python."""
    return [sys.executable, "-m", "tuktuk", *args]


def supervise(children: Sequence[Child], *, stop: threading.Event, tick: float = 0.2) -> None:
    """Run `children` until `stop` is set: restart each that exits (with a growing delay when it
    keeps failing), then SIGTERM all and wait (SIGKILL after STOP_TIMEOUT)."""
    for child in children:
        child.start()
    try:
        while not stop.wait(tick):
            now = time.monotonic()
            for child in children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.restarts += 1
                        child.start()
                    continue
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                child.history.append(code)
                if now - child.started_at >= HEALTHY_AFTER:
                    child.delay = 1.0
                logger.warning(
                    "%s exited with %s; restarting in %.0f s", child.name, code, child.delay
                )
                child.restart_at = now + child.delay
                child.delay = min(child.delay * 2, MAX_RESTART_DELAY)
    finally:
        _stop_all(children)


def _stop_all(children: Sequence[Child]) -> None:
    running = [c.process for c in children if c.process is not None and c.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
