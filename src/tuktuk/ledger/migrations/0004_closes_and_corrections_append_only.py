"""Closed days and balance corrections are append-only too (invariant 6): UPDATE is refused
even for SQL written around the ORM, as for ledger entries (0002)."""

from django.db import migrations

TABLES = ["ledger_dayclose", "ledger_balancecorrection"]


def _forward(table):
    message = f"{table} rows are append-only"
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
            """,
        ],
    }


def _backward(table):
    drop_trigger = f"DROP TRIGGER IF EXISTS {table}_no_update"
    return {
        "postgresql": [f"{drop_trigger} ON {table}", f"DROP FUNCTION IF EXISTS {table}_refuse_update()"],
        "sqlite": [drop_trigger],
        "mysql": [drop_trigger],
    }


def _run(make):
    def apply(apps, schema_editor):
        for table in TABLES:
            for sql in make(table)[schema_editor.connection.vendor]:
                schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_operator_money_tools")]

    operations = [migrations.RunPython(_run(_forward), _run(_backward), atomic=False)]
