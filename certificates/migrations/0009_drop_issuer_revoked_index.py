"""Drop cert_issuer_revoked (issuer, revoked_at): no query needs it any more.

The revoked rows of an issuer (CRL entries, delta CRLs, the consistency check) are
read through the partial cert_crl_entries index, and its unrevoked rows through the
issuer foreign key's own index. Each index is one more b-tree to update on every
issuance: on SQLite this one cost about 50 us per certificate.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("certificates", "0008_status_window_ordering"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="certificate", name="cert_issuer_revoked"),
    ]
