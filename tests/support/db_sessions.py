"""Ending a database session from outside, as a server restart or a failover does to it."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connection, connections


def session_id() -> int:
    """The server's id of this thread's session (PostgreSQL's backend pid, MariaDB's
    connection id)."""
    with connection.cursor() as cursor:
        postgresql = connection.vendor == "postgresql"
        cursor.execute("SELECT pg_backend_pid()" if postgresql else "SELECT CONNECTION_ID()")
        return int(cursor.fetchone()[0])


def session_kill(session: int) -> None:
    """End that session from another connection: its next statement finds it dead."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            if other.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [session])
            else:
                cursor.execute(f"KILL {int(session)}")
    finally:
        other.close()
