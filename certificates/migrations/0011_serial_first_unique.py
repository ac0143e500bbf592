"""The unique (issuer, serial) constraint becomes (serial, issuer) and the `cert_serial` index goes.

With the serial first, the unique index also serves a search by serial (exact or prefix), so
the separate serial index was a second random-key index that every issuance updated (
about 10 us per issuance on a small table, more at 100,000 certificates, where its leaves are
no longer in the page cache). Uniqueness is the same. On SQLite both constraint operations
rebuild the table, inside the migration's transaction.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('certificates', '0010_ocsp_responder_index'),
        ('organizations', '0002_identity'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='certificate',
            name='certificate_unique_issuer_serial',
        ),
        migrations.RemoveIndex(
            model_name='certificate',
            name='cert_serial',
        ),
        migrations.AddConstraint(
            model_name='certificate',
            constraint=models.UniqueConstraint(fields=('serial', 'issuer'), name='certificate_unique_issuer_serial'),
        ),
    ]
