"""Backups and token-held keys: what a backup cannot carry, it names (manifest, backup and restore output)."""

from __future__ import annotations

import json
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from backups.archive import MANIFEST
from certificates.models import CertificateAuthority
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.publication import generate_crl
from certificates.signers import custody_note
from tests.certificates.conftest import operator  # noqa: F401
from tests.certificates.softhsm import ISSUING_TOKEN, ROOT_PIN, ROOT_TOKEN, softhsm  # noqa: F401


@pytest.mark.django_db
def test_backup_and_restore_name_the_keys_that_stay_on_their_tokens(softhsm, organization, operator,  # noqa: F811
                                                                   tmp_path: Path, data_dir: Path):
    root = create_root_ca(organization=organization, common_name="Token Root", root_password=ROOT_PIN,
                          actor=operator, key_backend="pkcs11", token_label=ROOT_TOKEN)
    issuing = create_intermediate_ca(parent=root, common_name="Token Issuing", root_password=ROOT_PIN,
                                     actor=operator, key_backend="pkcs11", token_label=ISSUING_TOKEN)
    notes = sorted([custody_note(root), custody_note(issuing)])
    assert f"the key of CA {root.slug} is on token {ROOT_TOKEN}" in notes[0] + notes[1]

    archive, said = tmp_path / "backup.zip", StringIO()
    call_command("backup_database", "--output", str(archive), stdout=StringIO(), stderr=said)
    assert all(note in said.getvalue() for note in notes)
    with zipfile.ZipFile(archive) as opened:
        assert json.loads(opened.read(MANIFEST))["keys_not_in_backup"] == notes

    said = StringIO()
    call_command("restore_database", str(archive), "--yes", stdout=StringIO(), stderr=said)
    assert all(note in said.getvalue() for note in notes)
    restored = CertificateAuthority.objects.get(slug=root.slug)
    assert (restored.key_backend, restored.token_label, restored.key_id) == ("pkcs11", ROOT_TOKEN, root.key_id)
    assert generate_crl(restored, actor=operator, root_password=ROOT_PIN).number > 0  # the token still signs
