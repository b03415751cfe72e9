"""A throw-away pg_auto_failover formation: a monitor and two PostgreSQL nodes on loopback.

Debian's packages `pg-auto-failover-cli` (pg_autoctl) and `postgresql-15-auto-failover` (the
monitor's extension) run it; `make bench-failover` installs them. Everything lives in one
temporary directory (data dirs, pg_autoctl's config and state via XDG_*), listens on 127.0.0.1
only, on free ports, and is removed by `stop()`: the PostgreSQL on 5432 is never touched.

Run as root, the nodes run as the `postgres` user (pg_autoctl refuses root). Each node is one
`pg_autoctl create ... --run` process in a process group of its own; `kill()` SIGKILLs that
group (keeper, postmaster and every backend at once), which is what losing the machine looks
like to the monitor: a plain `kill -9` of the postmaster would only make the keeper restart it.

The monitor is tuned to decide quickly (see FAST_FAILOVER): one missed health check and no
keeper report for 2 s mark the primary unhealthy, and the standby is promoted 3 s later instead
of the default 30 s (`primary_demote_timeout`, the time an old primary cut off from the monitor
gets to demote itself; production keeps the default, docs/high-availability.md).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

PACKAGES = ("pg-auto-failover-cli", "postgresql-15-auto-failover")
DATABASE = "tuktuk"
FAST_FAILOVER = {
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 2000,
    "pgautofailover.primary_demote_timeout": 3000,
}
# SIGKILL is a process crash: the kernel keeps every write, so fsync guards against nothing the
# test does. Without it, and with checkpoints written at once rather than spread out, the
# checkpoint pg_basebackup waits for takes a second instead of a minute and a half on a disk
# shared with other test runs. Commits still wait for the standby.
NO_FSYNC = {"fsync": "off", "full_page_writes": "off", "checkpoint_completion_target": "0"}
PRIMARY_STATES = {"primary", "wait_primary"}


def postgres_bindir() -> Path | None:
    """The bin dir of a PostgreSQL whose share dir has the pgautofailover extension."""
    configured = os.environ.get("TUKTUK_PG_BINDIR")
    if configured:
        return Path(configured)
    for control in sorted(glob.glob("/usr/share/postgresql/*/extension/pgautofailover.control")):
        version = Path(control).parents[1].name
        bindir = Path(f"/usr/lib/postgresql/{version}/bin")
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def missing() -> str | None:
    """Why a formation cannot run here, or None."""
    if shutil.which("pg_autoctl") is None:
        return "pg_autoctl is not installed (apt-get install " + " ".join(PACKAGES) + ")"
    if postgres_bindir() is None:
        return (
            "the pgautofailover extension is not installed (apt-get install "
            + " ".join(PACKAGES)
            + ")"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no postgres user to run pg_autoctl as"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False


@dataclass
class Formation:
    root: Path
    bindir: Path
    monitor: Node
    nodes: list[Node]
    superuser: str
    run_as: str | None
    logs: list[Any] = field(default_factory=list)

    # ---------------------------------------------------------------- addresses

    def url(self, *, user: str | None = None, **query: str) -> str:
        """The app's multi-host URL: every node, and only a primary will do."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        params = {"target_session_attrs": "read-write", "connect_timeout": "2", **query}
        tail = "&".join(f"{key}={value}" for key, value in params.items())
        return f"postgres://{user or self.superuser}@{hosts}/{DATABASE}?{tail}"

    def monitor_uri(self) -> str:
        port = self.monitor.port
        return f"postgres://autoctl_node@127.0.0.1:{port}/pg_auto_failover?sslmode=disable"

    def connect_monitor(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.monitor.port,
            user=self.superuser,
            dbname="pg_auto_failover",
            autocommit=True,
            connect_timeout=2,
        )

    # ---------------------------------------------------------------- processes

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(
            {
                "HOME": str(self.root),
                "XDG_CONFIG_HOME": str(self.root / "config"),
                "XDG_DATA_HOME": str(self.root / "share"),
                "XDG_RUNTIME_DIR": str(self.root / "run"),
                "PG_CONFIG": str(self.bindir / "pg_config"),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
            }
        )
        return env

    def _spawn(self, node: Node, arguments: list[str]) -> None:
        log = (self.root / f"{node.name}.log").open("ab")
        self.logs.append(log)
        node.process = subprocess.Popen(
            ["pg_autoctl", *arguments],
            env=self._env(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.run_as,
            group=self.run_as,
            extra_groups=[] if self.run_as else None,
            start_new_session=True,  # its own process group: kill() takes all of it at once
        )

    def _common(self, node: Node) -> list[str]:
        return [
            "--pgctl",
            str(self.bindir / "pg_ctl"),
            "--pgdata",
            str(node.pgdata),
            "--pgport",
            str(node.port),
            "--hostname",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
            "--run",
        ]

    def _configure(self, port: int, dbname: str, settings: dict[str, Any]) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=port, user=self.superuser, dbname=dbname, autocommit=True
        ) as server:
            for name, value in settings.items():
                server.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            server.execute("SELECT pg_reload_conf()")

    def start(self, *, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        self._spawn(self.monitor, ["create", "monitor", *self._common(self.monitor)])
        self._wait(lambda: self._monitor_ready(), deadline, "the monitor")
        self._configure(self.monitor.port, "pg_auto_failover", {**FAST_FAILOVER, **NO_FSYNC})
        for index, node in enumerate(self.nodes):
            self._spawn(
                node,
                [
                    "create",
                    "postgres",
                    *self._common(node),
                    "--listen",
                    "127.0.0.1",
                    "--name",
                    node.name,
                    "--dbname",
                    DATABASE,
                    "--monitor",
                    self.monitor_uri(),
                ],
            )
            # One at a time: the second clones the first (pg_basebackup) once it runs alone.
            wanted = ["single"] if index == 0 else ["primary", "secondary"]
            self._wait(lambda w=wanted: self._states_are(w), deadline, f"node {node.name}")
            if index == 0:  # the standby's base backup copies the setting
                self._configure(node.port, DATABASE, NO_FSYNC)

    def _wait(self, condition: Any, deadline: float, what: str) -> None:
        while True:
            for node in [self.monitor, *self.nodes]:
                if node.process and not node.killed and node.process.poll() is not None:
                    raise RuntimeError(
                        f"pg_autoctl for {node.name} exited ({node.process.returncode}) while "
                        f"waiting for {what}; see {self.root / (node.name + '.log')}"
                    )
            if condition():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}: {self.states()}")
            time.sleep(0.1)  # polling pg_autoctl's progress, reported through the monitor

    def _monitor_ready(self) -> bool:
        try:
            with self.connect_monitor() as monitor:
                monitor.execute("SELECT 1 FROM pgautofailover.formation")
        except psycopg.Error:
            return False
        return True

    def states(self) -> list[dict[str, Any]]:
        """The monitor's view of each node (reported and assigned state, health)."""
        try:
            with self.connect_monitor() as monitor:
                rows = monitor.execute(
                    "SELECT nodename, nodeport, reportedstate::text, goalstate::text, health "
                    "FROM pgautofailover.node ORDER BY nodeid"
                ).fetchall()
        except psycopg.Error as exc:
            return [{"error": str(exc)}]
        return [
            {"name": r[0], "port": r[1], "reported": r[2], "assigned": r[3], "health": r[4]}
            for r in rows
        ]

    def _states_are(self, wanted: list[str]) -> bool:
        states = self.states()
        return [s.get("reported") for s in states] == wanted and all(
            s.get("reported") == s.get("assigned") for s in states
        )

    def primary(self) -> Node:
        for state in self.states():
            if state.get("reported") == "primary" and state.get("assigned") == "primary":
                return next(node for node in self.nodes if node.port == state["port"])
        raise RuntimeError(f"no primary: {self.states()}")

    def synchronous_standby_names(self) -> str:
        with psycopg.connect(self.url(), autocommit=True) as primary:
            row = primary.execute("SHOW synchronous_standby_names").fetchone()
        return str(row[0]) if row else ""

    def kill(self, node: Node) -> None:
        """SIGKILL the node's whole process group: keeper, postmaster, backends."""
        assert node.process is not None
        node.killed = True
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()

    def wait_for_promotion(self, old: Node, *, timeout: float = 120) -> Node:
        """Block until the monitor has another node writable (wait_primary or primary)."""
        deadline = time.monotonic() + timeout

        def promoted() -> bool:
            return any(
                s.get("port") != old.port
                and s.get("reported") in PRIMARY_STATES
                and s.get("reported") == s.get("assigned")
                for s in self.states()
            )

        self._wait(promoted, deadline, "the standby's promotion")
        new = next(
            s for s in self.states() if s["port"] != old.port and s["reported"] in PRIMARY_STATES
        )
        return next(node for node in self.nodes if node.port == new["port"])

    def events(self, count: int = 30) -> list[tuple[str, str]]:
        with self.connect_monitor() as monitor:
            rows = monitor.execute(
                "SELECT eventtime::text, description FROM pgautofailover.event "
                "ORDER BY eventid DESC LIMIT %s",
                [count],
            ).fetchall()
        return [(str(r[0]), str(r[1])) for r in reversed(rows)]

    def stop(self) -> None:
        """Stop every pg_autoctl (and its PostgreSQL), then remove the directory."""
        running = [n for n in [*self.nodes, self.monitor] if n.process and not n.killed]
        for node in running:
            assert node.process is not None
            with suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGTERM)
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the group (a postmaster still shutting down): gone.
            with suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()
        for log in self.logs:
            log.close()


@contextmanager
def formation(*, keep: bool = False) -> Iterator[Formation]:
    """A running monitor + primary + synchronous standby, gone afterwards."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    bindir = postgres_bindir()
    assert bindir is not None
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="tuktuk-failover-"))
    if run_as:
        account = pwd.getpwnam(run_as)
        os.chown(root, account.pw_uid, account.pw_gid)
    ports: list[int] = []
    while len(ports) < 3:
        if (port := free_port()) not in ports:
            ports.append(port)
    nodes = [Node(f"node{n}", ports[n], root / f"node{n}") for n in (1, 2)]
    the_formation = Formation(
        root=root,
        bindir=bindir,
        monitor=Node("monitor", ports[0], root / "monitor"),
        nodes=nodes,
        superuser=run_as or pwd.getpwuid(os.geteuid()).pw_name,
        run_as=run_as,
    )
    try:
        the_formation.start()
        yield the_formation
    finally:
        the_formation.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
