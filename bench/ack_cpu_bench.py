"""Benchmark: the CPU the web process spends to store and acknowledge one C2B confirmation.

    .venv/bin/python bench/ack_cpu_bench.py [--requests 3000] [--rounds 3]
        [--database-url postgres://postgres@127.0.0.1:5432/tuktuk_bench_ack_cpu]
    .venv/bin/python bench/ack_cpu_bench.py --tiny      # 50 requests, 1 round

Requests go through the WSGI application every web server runs (`tuktuk.wsgi:application`:
the webhook lane, the view, the store), called in this process with a WSGI environ as a server
builds it: no HTTP server and no network client share the measure, so the figure is what our
code costs per confirmation (issue 15: acknowledgement is what caps how fast confirmations come
in on two cores). Granian itself adds little: about 0.04 ms per request serving a trivial WSGI
application on this machine (bench/README.md).

The database is dropped, created and migrated (any of the three; PostgreSQL is the one the
issue's targets are for), the posting mode is `engine` (store and acknowledge; nothing posts).
Each round times `--requests` confirmations with time.process_time (CPU) and perf_counter
(wall, which includes waiting for the database), after 200 of warm-up. Then it checks that every
answer was 200 with ResultCode 0 and that every body is stored once, `received`. The last line
is the result; the exit status is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tuktuk_bench_ack_cpu"
TOKEN = "bench-callback-token-0123456789"  # noqa: S105 - this bench's own throwaway database
WARM_UP = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--requests", type=int, default=3000, help="confirmations per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="50 requests, 1 round (CI)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args()
    if args.tiny:
        args.requests, args.rounds = 50, 1

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from day_close_bench import database_drop, database_recreate

    database_recreate(args.database_url)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tuktuk.settings",
        TUKTUK_DATABASE_URL=args.database_url,
        TUKTUK_CALLBACK_TOKEN=TOKEN,
        TUKTUK_POSTING="engine",
        TUKTUK_ALLOWED_HOSTS="127.0.0.1",
    )
    os.environ.setdefault("TUKTUK_DATA_DIR", tempfile.mkdtemp(prefix="tuktuk-ack-bench-"))
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            database_drop(args.database_url)


def run(args: argparse.Namespace) -> int:
    from django.core.management import call_command

    from tuktuk.mpesa.c2b_payload import c2b_payload
    from tuktuk.wsgi import application

    call_command("migrate", verbosity=0)
    from django.db import connection

    from tuktuk.mpesa.models import Callback, CallbackKind, CallbackState

    when = dt.datetime(2026, 3, 10, 7, 0, tzinfo=dt.UTC)
    path = f"/c2b/{TOKEN}/confirmation"
    answers: list[tuple[str, bytes]] = []

    def confirm(n: int) -> None:
        body = json.dumps(
            c2b_payload(trans_id=f"ACK{n:07d}", amount="100", account="TUK001", when=when)
        ).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        status: list[str] = []
        response = application(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            answers.append((status[0], b"".join(response)))
        finally:
            if hasattr(response, "close"):
                response.close()  # Django's request_finished, as a server sends it

    sent = 0
    for _ in range(WARM_UP):
        confirm(sent)
        sent += 1
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(args.rounds):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(args.requests):
            confirm(sent)
            sent += 1
        cpu.append((time.process_time() - cpu_start) / args.requests)
        wall.append((time.perf_counter() - wall_start) / args.requests)

    refused = [a for a in answers if a[0] != "200 OK" or json.loads(a[1])["ResultCode"] != 0]
    stored = Callback.objects.filter(
        kind=CallbackKind.C2B_CONFIRMATION, state=CallbackState.RECEIVED
    )
    distinct = stored.values("body").distinct().count()
    ok = not refused and stored.count() == distinct == sent
    for n, (c, w) in enumerate(zip(cpu, wall, strict=True), start=1):
        print(f"round {n}: {c * 1000:.3f} ms CPU, {w * 1000:.3f} ms wall per confirmation")
    print(
        f"checks: {sent} answered, {len(refused)} not 200/ResultCode 0, "
        f"{stored.count()} stored received, {distinct} distinct: {'ok' if ok else 'FAILED'}"
    )
    print(
        f"store and acknowledge in the web process ({connection.vendor}): "
        f"median {statistics.median(cpu) * 1000:.3f} ms CPU, "
        f"{statistics.median(wall) * 1000:.3f} ms wall per confirmation "
        f"({args.rounds} x {args.requests})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
