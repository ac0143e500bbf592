"""Key the chain: every event gets `mac`, an HMAC of its hash under a key outside the database.

Existing events are MACed here, as they stand: the MAC attests that an event was in the
trail when this installation started keying its chain. It hides nothing: an event that
was edited before the upgrade still fails its hash or its link, as it did before.

On SQLite, adding a NOT NULL column and a CHECK constraint rebuilds the table, and each
rebuild drops the append-only triggers of migration 0002 with the old table; on
PostgreSQL the triggers stay and are disabled for the fill, in this migration's
transaction only. They are installed again at the end, in both directions.
"""

from django.db import migrations, models
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from audit.triggers import TABLE, install_triggers

BATCH = 2000


def reinstall_triggers(apps, schema_editor):
    install_triggers(schema_editor.connection)


def mac_existing_events(apps, schema_editor):
    from audit.keys import audit_keys

    connection = schema_editor.connection
    keys = audit_keys()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        cursor.execute(f"SELECT id, hash FROM {TABLE} ORDER BY id")  # noqa: S608 (a constant table name)
        rows = cursor.fetchall()
        for start in range(0, len(rows), BATCH):
            batch = [[keys.mac(event_hash), event_id] for event_id, event_hash in rows[start:start + BATCH]]
            cursor.executemany(f"UPDATE {TABLE} SET mac = %s WHERE id = %s", batch)  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0004_hash_not_unique"),
    ]

    operations = [
        # Runs last when the migration is reversed, after the rebuilds back.
        migrations.RunPython(migrations.RunPython.noop, reinstall_triggers, elidable=False),
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(mac_existing_events, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(condition=Exact(Length("mac"), 64), name="audit_event_mac_length"),
        ),
        migrations.RunPython(reinstall_triggers, migrations.RunPython.noop, elidable=False),
    ]
