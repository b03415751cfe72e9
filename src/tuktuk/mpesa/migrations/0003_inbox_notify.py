"""PostgreSQL only: every stored C2B confirmation notifies the channel the idle posting engine
LISTENs on (mpesa.posting_engine.INBOX_CHANNEL), so it wakes at once instead of polling. The
notification is sent when the storing transaction commits, never before the row is durable.
Also an index for the engine's claim (unposted confirmations, oldest first)."""

from django.db import migrations, models

from tuktuk.core.db import on_postgresql

CREATE = """
CREATE OR REPLACE FUNCTION mpesa_callback_inbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tuktuk_inbox', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER mpesa_callback_inbox_notify
    AFTER INSERT ON mpesa_callback
    FOR EACH ROW WHEN (NEW.kind = 'c2b_confirmation' AND NEW.state = 'received')
    EXECUTE FUNCTION mpesa_callback_inbox_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS mpesa_callback_inbox_notify ON mpesa_callback;
DROP FUNCTION IF EXISTS mpesa_callback_inbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("mpesa", "0002_roles")]

    operations = [
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP)),
        migrations.AddIndex(
            model_name="callback",
            index=models.Index(
                fields=["kind", "state", "received_at"], name="mpesa_callback_inbox_idx"
            ),
        ),
    ]
