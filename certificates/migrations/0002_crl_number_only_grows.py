"""A CA's CRL number only grows (RFC 5280 5.2.3): a trigger refuses any UPDATE that lowers it.

A CHECK constraint cannot compare the old and new row, so this lives in a trigger,
written for both supported databases.
"""

from django.db import migrations

SQLITE_CREATE = """
CREATE TRIGGER certificates_ca_crl_number_only_grows
BEFORE UPDATE OF crl_number ON certificates_certificateauthority
WHEN NEW.crl_number < OLD.crl_number
BEGIN
    SELECT RAISE(ABORT, 'a CA''s CRL number only grows');
END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS certificates_ca_crl_number_only_grows;"

POSTGRES_CREATE = """
CREATE OR REPLACE FUNCTION certificates_ca_crl_number_only_grows() RETURNS trigger AS $$
BEGIN
    IF NEW.crl_number < OLD.crl_number THEN
        -- check_violation (23514): the same integrity error class SQLite's RAISE(ABORT) gives.
        RAISE EXCEPTION 'a CA''s CRL number only grows' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""
POSTGRES_CREATE_TRIGGER = """
CREATE TRIGGER certificates_ca_crl_number_only_grows
BEFORE UPDATE OF crl_number ON certificates_certificateauthority
FOR EACH ROW EXECUTE FUNCTION certificates_ca_crl_number_only_grows();
"""
POSTGRES_DROP = "DROP TRIGGER IF EXISTS certificates_ca_crl_number_only_grows ON certificates_certificateauthority"
POSTGRES_DROP_FUNCTION = "DROP FUNCTION IF EXISTS certificates_ca_crl_number_only_grows()"

# One statement per execute: psycopg 3 refuses several in one parameterised call.
STATEMENTS = {
    "sqlite": ([SQLITE_CREATE], [SQLITE_DROP]),
    "postgresql": ([POSTGRES_CREATE, POSTGRES_CREATE_TRIGGER], [POSTGRES_DROP, POSTGRES_DROP_FUNCTION]),
}


def create_trigger(apps, schema_editor):
    for statement in STATEMENTS[schema_editor.connection.vendor][0]:
        schema_editor.execute(statement)


def drop_trigger(apps, schema_editor):
    for statement in STATEMENTS[schema_editor.connection.vendor][1]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("certificates", "0001_initial")]
    operations = [migrations.RunPython(create_trigger, drop_trigger)]
