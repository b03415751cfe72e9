"""Fault campaign, scenario 4: the database crashes under load (PostgreSQL).

A private PostgreSQL 15 cluster (its own directory and port: the shared cluster on 5432 that
the other tests use is never touched) is migrated, a server runs against it, confirmations are
sent, and mid-load the cluster is stopped with `pg_ctl stop -m immediate` (every backend
killed, no checkpoint: WAL recovery on restart). It is started again while the sender keeps
retrying non-200 answers. Afterwards: every acknowledged TransID credited exactly once, none
doubled, the invariants hold, and the same server process recovered without a restart (Django
drops a broken connection at the end of the request that found it broken).

SQLite's version of this (kill -9 of the server mid-write, the WAL file consistent after the
restart) is in test_web_kill.py.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from tests.support.faults import (
    MpesaSender,
    NoPrivateCluster,
    assert_exactly_once,
    join_sender,
    other_database_env,
    other_database_run,
    private_postgresql,
    receipts,
    replay_callbacks,
    report,
    scale,
    tuktuk,
)
from tests.support.live_server import live_server_process

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="crashes a private PostgreSQL cluster; SQLite's kill -9 is in test_web_kill.py",
    ),
]

ACCOUNTS = [f"TUK{n:03d}" for n in range(1, 8)]  # tests.support.factories.make_fleet


def test_postgresql_crash_and_restart_mid_load_loses_and_doubles_nothing() -> None:
    size = scale()
    try:
        cluster_context = private_postgresql()
        cluster = cluster_context.__enter__()
    except NoPrivateCluster as why:
        pytest.skip(str(why))
    try:
        cluster.create_database()
        env = other_database_env(cluster.url())
        migrated = tuktuk("migrate", "--noinput", env=env)
        assert migrated.returncode == 0, migrated.stderr
        other_database_run("setup", env=env)
        payloads = receipts("CRASH", size.crash_receipts, accounts=ACCOUNTS, seed=41)
        with live_server_process(
            workers=2, threads=4, extra_env={"TUKTUK_DATABASE_URL": cluster.url()}
        ) as server:
            url = server.c2b_url("confirmation")
            sender = MpesaSender(target=lambda attempt: url, concurrency=size.concurrency)
            thread = sender.run_in_background(payloads)
            assert sender.acknowledged.reached(len(payloads) // 4).wait(120)
            cluster.crash()
            # Down until the sender has seen it refuse a round of requests, then back.
            failed = sender.failures.reached(size.concurrency).wait(60)
            acked_while_down = sender.acknowledged.value
            cluster.start()
            join_sender(thread, timeout=600)
            recovered_without_restart = server.process.poll() is None
        replayed = replay_callbacks(env)
        counts = other_database_run(
            "check",
            env=env,
            stdin=json.dumps({"sent": sorted(sender.sent), "acknowledged": sorted(sender.acked)}),
        )
        answers = sender.answers()
        counts.update(
            deliveries=sum(answers.values()),
            retried=sum(n for answer, n in answers.items() if answer != "200"),
            answers=dict(answers),
        )
        report("database-crash", counts, vendor="postgresql")
        print(replayed, "acknowledged before the restart:", acked_while_down)
        assert failed, "the crash refused no request: the scenario proves nothing"
        assert recovered_without_restart
        assert answers.keys() <= {"200", "503"}, answers  # the server answered throughout
        assert_exactly_once(counts)
    finally:
        cluster_context.__exit__(None, None, None)
