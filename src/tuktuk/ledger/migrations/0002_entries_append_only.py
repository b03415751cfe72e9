"""Ledger entries are append-only even for SQL written around the ORM: UPDATE is refused."""

from django.db import migrations

MESSAGE = "ledger entries are append-only; post a correction instead"

FORWARD = {
    "postgresql": [
        f"""
        CREATE OR REPLACE FUNCTION ledger_entry_refuse_update() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
        END;
        $$ LANGUAGE plpgsql
        """,
        """
        CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_ledgerentry
        FOR EACH ROW EXECUTE FUNCTION ledger_entry_refuse_update()
        """,
    ],
    "sqlite": [
        f"""
        CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_ledgerentry
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
        """,
    ],
    "mysql": [
        f"""
        CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_ledgerentry
        FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{MESSAGE}'
        """,
    ],
}

BACKWARD = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS ledger_entry_no_update ON ledger_ledgerentry",
        "DROP FUNCTION IF EXISTS ledger_entry_refuse_update()",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS ledger_entry_no_update"],
    "mysql": ["DROP TRIGGER IF EXISTS ledger_entry_no_update"],
}


def _run(statements):
    def apply(apps, schema_editor):
        for sql in statements[schema_editor.connection.vendor]:
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), atomic=False)]
