"""Issue, revoke, back up, change things, restore: exactly the backed-up state, and it still works."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.verification import verify_chain
from backups.archive import MANIFEST, SQLITE_SNAPSHOT
from backups.services import restore_backup
from certificates.keystore import artifact_store
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.authorities import create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.services.revocation import revoke_certificate
from certificates.signers import intermediate_signer
from certificates.vault import unlock_root_key
from organizations.models import Organization
from pki_project.actor import Actor
from tests.backups.conftest import ROOT_PASSWORD
from tests.backups.helpers import database_fingerprint, directory_fingerprint, make_backup, read_members


def issue(ca: CertificateAuthority, name: str, operator: Actor) -> Certificate:
    return issue_certificate(ca, IssuanceRequest(profile="server", common_name=name, key_type="ec-p256"),
                             actor=operator)


@pytest.fixture
def lived_in_pki(populated_pki: CertificateAuthority, operator: Actor) -> CertificateAuthority:
    """Two issued certificates (server keys: PKCS#12 artifacts), one of them revoked, and a CRL."""
    issue(populated_pki, "kept.example.com", operator)
    revoked = issue(populated_pki, "revoked.example.com", operator)
    revoke_certificate(revoked, reason="keyCompromise", actor=operator)
    generate_crl(populated_pki, actor=operator)
    return populated_pki


def change_everything(ca: CertificateAuthority, operator: Actor) -> None:
    issue(ca, "after-backup.example.com", operator)
    kept = Certificate.objects.get(common_name="kept.example.com")
    revoke_certificate(kept, reason="superseded", actor=operator)
    generate_crl(ca, actor=operator)
    other = Organization.objects.create(name="Later Corp", slug="later")
    create_root_ca(organization=other, common_name="Later Root", root_password=ROOT_PASSWORD, key_type="ec-p256",
                   days=365, actor=operator)


def without_crl_numbers(fingerprint: dict) -> list[dict]:
    rows = [json.loads(row) for row in fingerprint["certificates.certificateauthority"]]
    return [{key: value for key, value in row.items() if key != "crl_number"} for row in rows]


def without_revocation(rows: list[str]) -> list[dict]:
    columns = ("revoked_at", "revocation_reason", "invalidity_date")
    return [{key: value for key, value in json.loads(row).items() if key not in columns} for row in rows]


def test_restore_brings_back_the_backed_up_state_but_nothing_revoked_since(
        lived_in_pki: CertificateAuthority, operator: Actor, tmp_path: Path, data_dir: Path) -> None:
    before_db, before_files = database_fingerprint(), directory_fingerprint(data_dir)
    archive = make_backup(tmp_path / "backup.zip")
    crl_number_at_backup = CertificateAuthority.objects.get(pk=lived_in_pki.pk).crl_number
    change_everything(lived_in_pki, operator)
    crl_number_after_changes = CertificateAuthority.objects.get(pk=lived_in_pki.pk).crl_number
    assert crl_number_after_changes > crl_number_at_backup
    assert directory_fingerprint(data_dir) != before_files
    trail_before_restore = database_fingerprint()["audit.auditevent"]

    report = restore_backup(archive, Actor.operator("restore-test"))

    after_db = database_fingerprint()
    assert directory_fingerprint(data_dir) == before_files
    carried = ("audit.auditevent", "sessions", "certificates.certificateauthority", "certificates.certificate",
               "certificates.certificaterevocationlist")
    for label, rows in before_db.items():
        if label not in carried:
            assert after_db[label] == rows, label
    # Certificates: as backed up, but the one revoked after the backup stays revoked.
    assert without_revocation(after_db["certificates.certificate"]) == without_revocation(
        before_db["certificates.certificate"])
    kept = Certificate.objects.get(common_name="kept.example.com")
    assert (kept.revocation_reason, kept.revoked_at is not None) == ("superseded", True)
    assert report.carried.certificate_revocations == 1
    # CRLs: the backed-up ones, and the one published after the backup (a CRL number never goes back).
    assert after_db["certificates.certificaterevocationlist"][:len(before_db[
        "certificates.certificaterevocationlist"])] == before_db["certificates.certificaterevocationlist"]
    newest = CertificateRevocationList.objects.filter(ca=lived_in_pki).order_by("-number").first()
    assert newest.number == crl_number_after_changes
    assert kept.serial in {format(entry.serial_number, "040x") for entry in x509.load_der_x509_crl(bytes(newest.der))}
    restored_cas = {ca.pk: ca for ca in CertificateAuthority.objects.all()}
    assert restored_cas[lived_in_pki.pk].crl_number == crl_number_after_changes
    assert without_crl_numbers(after_db) == without_crl_numbers(before_db)
    # The audit trail is never rolled back: the live one, then exactly one event, this restore.
    assert report.audit_trail == "kept"
    assert after_db["audit.auditevent"][:-1] == trail_before_restore
    restore_event = AuditEvent.objects.order_by("-seq").first()
    assert restore_event.action == AuditAction.BACKUP_RESTORE
    assert restore_event.details["restore_id"] == report.restore_id
    assert restore_event.details["audit_trail"] == "kept"
    assert restore_event.details["carried_forward"]["certificate_revocations"] == 1
    assert restore_event.actor_label == "cli:restore-test"
    assert verify_chain().ok
    assert report.preview.cas_dropped == ["Later Root"]
    assert report.warnings == []
    for path in [data_dir, *data_dir.rglob("*")]:  # as private as the vault makes them
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path


def test_restored_pki_still_works(lived_in_pki: CertificateAuthority, operator: Actor, tmp_path: Path) -> None:
    archive = make_backup(tmp_path / "backup.zip")
    change_everything(lived_in_pki, operator)
    restore_backup(archive, operator)

    ca = CertificateAuthority.objects.get(pk=lived_in_pki.pk)
    root = ca.parent
    # Keys unlock: the root with its password, the intermediate from the vault (no stale cached key).
    unlock_root_key(artifact_store(), root.key_directory, ROOT_PASSWORD)
    assert intermediate_signer(ca) is not None
    # CRLs regenerate, listing every certificate revoked before the backup and since.
    published_before = CertificateAuthority.objects.get(pk=ca.pk).crl_number
    crl_row = generate_crl(ca, actor=operator)
    assert crl_row.number == published_before + 1  # never a number already published before the restore
    crl = x509.load_der_x509_crl(bytes(crl_row.der))
    revoked_serials = {format(entry.serial_number, "x") for entry in crl}
    expected = {c.serial.lstrip("0") for c in Certificate.objects.filter(issuer=ca, revoked_at__isnull=False)}
    assert {s.lstrip("0") for s in revoked_serials} == expected
    assert len(expected) == 2
    assert Certificate.objects.get(common_name="kept.example.com").revoked_at is not None
    assert not Certificate.objects.filter(common_name="after-backup.example.com").exists()
    assert not Organization.objects.filter(slug="later").exists()
    # New work goes on after the restore, and the chain keeps verifying.
    issue(ca, "post-restore.example.com", operator)
    assert verify_chain().ok


def test_archive_layout_and_manifest(lived_in_pki: CertificateAuthority, tmp_path: Path, data_dir: Path) -> None:
    archive = make_backup(tmp_path / "backup.zip")
    with zipfile.ZipFile(archive) as opened:
        names = [info.filename for info in opened.infolist()]
        assert names[-1] == MANIFEST
        for info in opened.infolist():
            assert (info.external_attr >> 16) == 0o100600
    manifest = json.loads(read_members(archive)[MANIFEST])
    assert manifest["format"] == "pki-backup"
    assert manifest["format_version"] == 1
    assert manifest["encryption_key_id"] == artifact_store().cipher.key_id.hex()
    assert ["audit", "0001_initial"] in manifest["migrations"]
    assert manifest["tables"]["certificates.certificate"]["rows"] == Certificate.objects.count()
    artifacts = sorted(name for name in names if name.startswith("data/"))
    assert artifacts == sorted("data/" + relpath for relpath in artifact_store().iter_artifacts())
    assert all("\\" not in name and not name.startswith("/") for name in names)
    assert set(manifest["members"]) == set(names) - {MANIFEST}
    assert "db/sessions.session.jsonl" not in names
    assert (SQLITE_SNAPSHOT in names) == (manifest["database_vendor"] == "sqlite")
    assert AuditEvent.objects.order_by("-seq").first().action == AuditAction.BACKUP_CREATE
