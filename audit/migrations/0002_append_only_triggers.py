"""Refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) of audit events in the database itself."""

from django.db import migrations

from audit.triggers import install_triggers, remove_triggers


def forwards(apps, schema_editor):
    install_triggers(schema_editor.connection)


def backwards(apps, schema_editor):
    remove_triggers(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
