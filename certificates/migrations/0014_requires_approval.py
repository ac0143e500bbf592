"""`requires_approval` on CAs and profiles (two-person approval of issuance).

SQLite adds a column with a default by rebuilding the table, which drops the table's triggers:
the CA table's "CRL numbers only grow" trigger (0002) is created again right after, and again
after the column is removed when this migration is reversed. PostgreSQL keeps its trigger.
"""

import importlib

from django.db import migrations, models

crl_trigger = importlib.import_module("certificates.migrations.0002_crl_number_only_grows")


def recreate_crl_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    schema_editor.execute(crl_trigger.SQLITE_DROP)
    schema_editor.execute(crl_trigger.SQLITE_CREATE)


class Migration(migrations.Migration):

    dependencies = [
        ('certificates', '0013_certificate_profile'),
    ]

    operations = [
        # Reversed, this runs last: after the column is removed (and the table rebuilt again).
        migrations.RunPython(migrations.RunPython.noop, recreate_crl_trigger),
        migrations.AddField(
            model_name='certificateauthority',
            name='requires_approval',
            field=models.BooleanField(default=False, help_text="Every certificate this CA issues waits for a second person's approval."),
        ),
        migrations.AddField(
            model_name='certificateprofile',
            name='requires_approval',
            field=models.BooleanField(default=False, help_text='A request waits as pending until a second person approves it.'),
        ),
        migrations.RunPython(recreate_crl_trigger, migrations.RunPython.noop),
    ]
