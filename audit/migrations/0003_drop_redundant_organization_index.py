"""Drop the single-column index on organization_id: audit_event_org_seq (organization_id, -seq) serves it.

One index fewer to update on every append. Plain DROP INDEX rather than
AlterField: on SQLite, AlterField rebuilds the table, which would drop the
append-only triggers of migration 0002 with it.
"""

from django.db import migrations, models

INDEX = "audit_auditevent_organization_id_4b1fe3b9"


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_append_only_triggers"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "audit_auditevent" ("organization_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="organization_id",
                    field=models.BigIntegerField(blank=True, null=True),
                ),
            ],
        ),
    ]
