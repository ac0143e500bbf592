"""Rotating PKI_ENCRYPTION_KEY through the command: resumable after a crash, nothing lost, nothing leaked."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.actions import AuditAction
from audit.keys import audit_keys, audit_keys_for
from audit.models import AuditEvent
from audit.verification import database_records, verify_chain, verify_records
from certificates.keystore import artifact_store
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.signers import forget_all_signing_keys
from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.errors import WrongEncryptionKey
from certificates.vault.storage import ArtifactStore
from tests.certificates.conftest import ROOT_PASSWORD
from tests.helpers import unlock_root

NEW_KEY = "rotated-encryption-key-abcdefghijklmnopqrstuvwxyz"
NEW_SALT = "rotated-salt-0f1e2d3c4b5a6978"


@pytest.fixture
def populated(intermediate_ca, operator):
    """A root, an intermediate and a server-generated PKCS#12: six artifacts."""
    issue_certificate(intermediate_ca, IssuanceRequest(profile="client", common_name="r.example.com"),
                      actor=operator)
    return intermediate_ca


def rotate(*extra: str) -> dict:
    out = StringIO()
    call_command("rotate_encryption_key", "--json", *extra, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


@pytest.mark.django_db
@pytest.mark.parametrize("crash_after", [0, 1, 3, 5])
def test_rotation_interrupted_after_k_files_then_rerun_loses_nothing(crash_after, populated, monkeypatch, settings,
                                                                      data_dir, client, operator):
    monkeypatch.setenv("PKI_NEW_ENCRYPTION_KEY", NEW_KEY)
    monkeypatch.setenv("PKI_NEW_ENCRYPTION_SALT", NEW_SALT)
    relpaths = sorted(artifact_store().iter_artifacts())
    assert len(relpaths) == 6
    off_site = verify_chain().make_checkpoint(audit_keys())  # a checkpoint signed under the old key
    with pytest.raises(CommandError, match="Simulated crash"):
        rotate("--fail-after", str(crash_after))
    assert client.get("/ready").status_code == 503, "no traffic while a rotation is half done"

    report = rotate()
    assert report["backups_need_old_key"] is True
    assert "OLD key and salt" in report["note"]
    assert report["rotated"] + report["already_done"] == len(relpaths)
    assert report["already_done"] == crash_after
    new_store = ArtifactStore(data_dir, ArtifactCipher.from_settings_values(NEW_KEY, NEW_SALT))
    old_store = artifact_store()
    for relpath in relpaths:
        assert new_store.read(relpath)
        with pytest.raises(WrongEncryptionKey):
            old_store.read(relpath)

    settings.PKI_ENCRYPTION_KEY, settings.PKI_ENCRYPTION_SALT = NEW_KEY, NEW_SALT
    forget_all_signing_keys()
    root = populated.parent
    assert unlock_root(root, ROOT_PASSWORD, operator) is not None  # the two-part root key survives rotation
    issue_certificate(populated, IssuanceRequest(profile="client", common_name="after.example.com"),
                      actor=operator)
    assert client.get("/ready").status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.ENCRYPTION_KEY_ROTATE).count() == 1
    # The audit chain moved to the new audit keys, and the old checkpoint still proves its history.
    chain = verify_chain(checkpoint=off_site)
    assert chain.ok, chain.broken
    assert chain.macs_checked
    assert verify_records(database_records(), keys=audit_keys_for(NEW_KEY, NEW_SALT)).ok


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "salt", "message"),
    [(None, NEW_SALT, "PKI_NEW_ENCRYPTION_KEY is not set"),
     ("Zq7-tiny", NEW_SALT, "PKI_NEW_ENCRYPTION_KEY is too short"),
     (NEW_KEY, "aaaaaaaaaaaaaaaaaaaaaaaa", "PKI_NEW_ENCRYPTION_SALT is too weak")],
)
def test_weak_new_key_is_refused_and_nothing_changes(key, salt, message, populated, monkeypatch, data_dir):
    if key is None:
        monkeypatch.delenv("PKI_NEW_ENCRYPTION_KEY", raising=False)
    else:
        monkeypatch.setenv("PKI_NEW_ENCRYPTION_KEY", key)
    monkeypatch.setenv("PKI_NEW_ENCRYPTION_SALT", salt)
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    with pytest.raises(CommandError, match=message) as refused:
        rotate()
    assert key is None or key not in str(refused.value)
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before
