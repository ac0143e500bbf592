"""Where a CA's key lives: the file vault or a PKCS#11 token (token label, key label and CKA_ID; no PIN;
no key directory: nothing of a token key is in the data directory).

SQLite rebuilds the CA table to change its CHECK constraints, which drops the trigger that keeps
CRL numbers growing (0002): it is created again at the end.
"""

import importlib

from django.db import migrations, models

_crl_trigger = importlib.import_module("certificates.migrations.0002_crl_number_only_grows")


def recreate_crl_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        _crl_trigger.drop_trigger(apps, schema_editor)
        _crl_trigger.create_trigger(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('certificates', '0015_idempotency_any_post_answer'),
        ('organizations', '0002_identity'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='certificateauthority',
            name='ca_root_has_key_params',
        ),
        migrations.RemoveConstraint(
            model_name='certificateauthority',
            name='ca_key_directory_present',
        ),
        migrations.AddField(
            model_name='certificateauthority',
            name='key_backend',
            field=models.CharField(choices=[('vault', 'encrypted file vault'), ('pkcs11', 'PKCS#11 token')], default='vault', max_length=16),
        ),
        migrations.AddField(
            model_name='certificateauthority',
            name='key_id',
            field=models.CharField(blank=True, help_text='CKA_ID of the key on the token, in hex.', max_length=64),
        ),
        migrations.AddField(
            model_name='certificateauthority',
            name='key_label',
            field=models.CharField(blank=True, help_text='CKA_LABEL of the key on the token.', max_length=64),
        ),
        migrations.AddField(
            model_name='certificateauthority',
            name='token_label',
            field=models.CharField(blank=True, help_text='PKCS#11 token holding the key (CKA_LABEL of the token); empty for the vault.', max_length=32),
        ),
        migrations.AddConstraint(
            model_name='certificateauthority',
            constraint=models.CheckConstraint(condition=models.Q(('kind', 'intermediate'), ('key_backend', 'pkcs11'), models.Q(('root_key_params', {}), _negated=True), _connector='OR'), name='ca_root_has_key_params'),
        ),
        migrations.AddConstraint(
            model_name='certificateauthority',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('key_backend', 'vault'), ('key_id', ''), ('token_label', '')), models.Q(('key_backend', 'pkcs11'), models.Q(('token_label', ''), _negated=True), models.Q(('key_id', ''), _negated=True)), _connector='OR'), name='ca_token_key_named'),
        ),
        migrations.AddConstraint(
            model_name='certificateauthority',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('key_directory', ''), _negated=True), ('key_backend', 'pkcs11'), _connector='OR'), name='ca_key_directory_present'),
        ),
        migrations.RunPython(recreate_crl_trigger, migrations.RunPython.noop),
    ]
