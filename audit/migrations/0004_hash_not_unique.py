"""Drop the unique index on the event hash: the unique `seq` already keeps the chain from forking.

Two events with equal hashes would need equal canonical contents, `seq` included, so the index
added no guarantee; nothing looks events up by hash either. It was a random-key index that every
append updated, leaf pages that stop fitting the page cache as the trail grows.

On SQLite, AlterField rebuilds the table, and the rebuild drops the append-only triggers of
migration 0002 with the old table: they are installed again right after, in the same
transaction, in both directions.
"""

from django.db import migrations, models

from audit.triggers import install_triggers


def reinstall_triggers(apps, schema_editor):
    install_triggers(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0003_drop_redundant_organization_index"),
    ]

    operations = [
        # Runs last when the migration is reversed, after the rebuild back to a unique hash.
        migrations.RunPython(migrations.RunPython.noop, reinstall_triggers, elidable=False),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(max_length=64),
        ),
        migrations.RunPython(reinstall_triggers, migrations.RunPython.noop, elidable=False),
    ]
