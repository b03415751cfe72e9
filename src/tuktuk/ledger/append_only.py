"""SQL that makes a table append-only on every supported database: UPDATE is refused by a
trigger, so even SQL written around the ORM cannot rewrite history (docs/design.md, invariant 6).
And the closed-day guard: no ledger entry may be inserted on a business day the driver has
closed (invariant 8). Used by the ledger migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _forward(table: str, message: str) -> dict[str, list[str]]:
    return {
        "postgresql": [
            f"""
            CREATE OR REPLACE FUNCTION {table}_refuse_update() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql
            """,
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_refuse_update()
            """,
        ],
        "sqlite": [
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{message}'); END
            """,
        ],
        "mysql": [
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'
            """,  # noqa: S608 - table and message are constants of our migrations
        ],
    }


def _backward(table: str, message: str) -> dict[str, list[str]]:
    drop = f"DROP TRIGGER IF EXISTS {table}_no_update"
    return {
        "postgresql": [f"{drop} ON {table}", f"DROP FUNCTION IF EXISTS {table}_refuse_update()"],
        "sqlite": [drop],
        "mysql": [drop],
    }


def _runner(make: Callable[[str, str], dict[str, list[str]]], tables: dict[str, str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        for table, message in tables.items():
            for sql in make(table, message)[schema_editor.connection.vendor]:
                schema_editor.execute(sql)

    return run


def append_only_operations(tables: dict[str, str]) -> list[Any]:
    """Migration operations for {table: message}. Not atomic: MySQL cannot roll back DDL."""
    from django.db import migrations

    return [
        migrations.RunPython(_runner(_forward, tables), _runner(_backward, tables), atomic=False)
    ]


def _insert_guard_forward(
    table: str, *, name: str, function: str, refused_when: str, sqlite_when: str, message: str
) -> dict[str, list[str]]:
    """A BEFORE INSERT trigger `{table}_{name}` that refuses the row when `refused_when` (SQL
    over NEW) holds; SQLite takes its own condition (`sqlite_when`) where the two differ."""
    return {
        "postgresql": [
            f"""
            CREATE OR REPLACE FUNCTION {table}_{function}() RETURNS trigger AS $$
            BEGIN
                IF {refused_when} THEN
                    RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """,
            f"""
            CREATE TRIGGER {table}_{name} BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_{function}()
            """,
        ],
        "sqlite": [
            f"""
            CREATE TRIGGER {table}_{name} BEFORE INSERT ON {table}
            WHEN {sqlite_when}
            BEGIN SELECT RAISE(ABORT, '{message}'); END
            """,
        ],
        "mysql": [
            f"""
            CREATE TRIGGER {table}_{name} BEFORE INSERT ON {table}
            FOR EACH ROW BEGIN
                IF {refused_when} THEN
                    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}';
                END IF;
            END
            """,
        ],
    }


def _insert_guard_backward(table: str, *, name: str, function: str) -> dict[str, list[str]]:
    drop = f"DROP TRIGGER IF EXISTS {table}_{name}"
    return {
        "postgresql": [f"{drop} ON {table}", f"DROP FUNCTION IF EXISTS {table}_{function}()"],
        "sqlite": [drop],
        "mysql": [drop],
    }


_CLOSED_DAY = (
    "EXISTS (SELECT 1 FROM ledger_dayclose"
    " WHERE driver_id = NEW.driver_id AND business_day = NEW.business_day)"
)


def _closed_day_forward(table: str, message: str) -> dict[str, list[str]]:
    return _insert_guard_forward(
        table,
        name="closed_day",
        function="refuse_closed_day",
        refused_when=_CLOSED_DAY,
        sqlite_when=_CLOSED_DAY,
        message=message,
    )


def _closed_day_backward(table: str, message: str) -> dict[str, list[str]]:
    return _insert_guard_backward(table, name="closed_day", function="refuse_closed_day")


def closed_day_guard_operations(tables: dict[str, str]) -> list[Any]:
    """The database refuses a row of `table` (with driver_id, business_day) on a day that
    driver has closed. The application decides the day under the driver's lock; this holds
    even around it."""
    from django.db import migrations

    return [
        migrations.RunPython(
            _runner(_closed_day_forward, tables),
            _runner(_closed_day_backward, tables),
            atomic=False,
        )
    ]


def _deposit_chain_forward(table: str, message: str) -> dict[str, list[str]]:
    # table is a constant of our migrations, never input.
    last_seq = f"COALESCE((SELECT MAX(seq) FROM {table} WHERE driver_id = NEW.driver_id), 0)"  # noqa: S608
    last_balance = (
        f"COALESCE((SELECT balance_after FROM {table} WHERE driver_id = NEW.driver_id"  # noqa: S608
        " ORDER BY seq DESC LIMIT 1), 0)"
    )
    return _insert_guard_forward(
        table,
        name="chain",
        function="chain",
        refused_when=f"NEW.seq <> {last_seq} + 1"
        f" OR NEW.balance_after <> {last_balance} + NEW.amount",
        # SQLite keeps decimals as binary floats: the balance is compared within half a cent.
        sqlite_when=f"NEW.seq <> {last_seq} + 1"
        f" OR ABS(NEW.balance_after - ({last_balance} + NEW.amount)) > 0.005",
        message=message,
    )


def _deposit_chain_backward(table: str, message: str) -> dict[str, list[str]]:
    return _insert_guard_backward(table, name="chain", function="chain")


def deposit_chain_operations(tables: dict[str, str]) -> list[Any]:
    """The database refuses a deposit entry that does not follow the driver's previous one:
    seq is the next number and balance_after is the previous balance plus the amount. With
    UPDATE refused too, the last balance_after is always the sum of the driver's entries."""
    from django.db import migrations

    return [
        migrations.RunPython(
            _runner(_deposit_chain_forward, tables),
            _runner(_deposit_chain_backward, tables),
            atomic=False,
        )
    ]


def sqlite_triggers_reinstall_operations(
    *, append_only: dict[str, str], closed_day: dict[str, str]
) -> list[Any]:
    """SQLite cannot alter a column or a constraint in place: Django rebuilds the table, and the
    rebuild drops its triggers. A migration that alters a guarded table puts them back with
    this (a no-op on PostgreSQL and MariaDB, whose ALTER TABLE keeps triggers)."""
    from django.db import migrations

    def reinstall(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "sqlite":
            return
        for makers, tables in (
            ((_backward, _forward), append_only),
            ((_closed_day_backward, _closed_day_forward), closed_day),
        ):
            drop, create = makers
            for table, message in tables.items():
                for sql in [*drop(table, message)["sqlite"], *create(table, message)["sqlite"]]:
                    schema_editor.execute(sql)

    return [migrations.RunPython(reinstall, migrations.RunPython.noop, atomic=False)]
