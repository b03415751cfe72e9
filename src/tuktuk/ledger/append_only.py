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


def _closed_day_forward(table: str, message: str) -> dict[str, list[str]]:
    closed = (
        "SELECT 1 FROM ledger_dayclose"
        " WHERE driver_id = NEW.driver_id AND business_day = NEW.business_day"
    )
    return {
        "postgresql": [
            f"""
            CREATE OR REPLACE FUNCTION {table}_refuse_closed_day() RETURNS trigger AS $$
            BEGIN
                IF EXISTS ({closed}) THEN
                    RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """,
            f"""
            CREATE TRIGGER {table}_closed_day BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_refuse_closed_day()
            """,
        ],
        "sqlite": [
            f"""
            CREATE TRIGGER {table}_closed_day BEFORE INSERT ON {table}
            WHEN EXISTS ({closed})
            BEGIN SELECT RAISE(ABORT, '{message}'); END
            """,
        ],
        "mysql": [
            f"""
            CREATE TRIGGER {table}_closed_day BEFORE INSERT ON {table}
            FOR EACH ROW BEGIN
                IF EXISTS ({closed}) THEN
                    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}';
                END IF;
            END
            """,
        ],
    }


def _closed_day_backward(table: str, message: str) -> dict[str, list[str]]:
    drop = f"DROP TRIGGER IF EXISTS {table}_closed_day"
    return {
        "postgresql": [
            f"{drop} ON {table}",
            f"DROP FUNCTION IF EXISTS {table}_refuse_closed_day()",
        ],
        "sqlite": [drop],
        "mysql": [drop],
    }


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
    broken = f"NEW.seq <> {last_seq} + 1 OR NEW.balance_after <> {last_balance} + NEW.amount"
    return {
        "postgresql": [
            f"""
            CREATE OR REPLACE FUNCTION {table}_chain() RETURNS trigger AS $$
            BEGIN
                IF {broken} THEN
                    RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """,
            f"""
            CREATE TRIGGER {table}_chain BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_chain()
            """,
        ],
        # SQLite keeps decimals as binary floats: the balance is compared within half a cent.
        "sqlite": [
            f"""
            CREATE TRIGGER {table}_chain BEFORE INSERT ON {table}
            WHEN NEW.seq <> {last_seq} + 1
                OR ABS(NEW.balance_after - ({last_balance} + NEW.amount)) > 0.005
            BEGIN SELECT RAISE(ABORT, '{message}'); END
            """,
        ],
        "mysql": [
            f"""
            CREATE TRIGGER {table}_chain BEFORE INSERT ON {table}
            FOR EACH ROW BEGIN
                IF {broken} THEN
                    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}';
                END IF;
            END
            """,
        ],
    }


def _deposit_chain_backward(table: str, message: str) -> dict[str, list[str]]:
    drop = f"DROP TRIGGER IF EXISTS {table}_chain"
    return {
        "postgresql": [f"{drop} ON {table}", f"DROP FUNCTION IF EXISTS {table}_chain()"],
        "sqlite": [drop],
        "mysql": [drop],
    }


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
