"""Portability: a backup made on SQLite restores into PostgreSQL and the reverse, from another data directory.

The source installation runs in a subprocess (`manage.py backup_database` against its own
database and data directory); the restore runs in this test process, on whichever engine
the test pass uses. On the SQLite pass this covers PostgreSQL -> SQLite (and SQLite ->
SQLite); on the PostgreSQL pass, SQLite -> PostgreSQL (and PostgreSQL -> PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

from django.db import connection

from audit.verification import verify_chain
from backups.services import restore_backup
from certificates.keystore import artifact_store
from certificates.models import CertificateAuthority
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.signers import intermediate_signer
from certificates.vault import unlock_root_key
from organizations.models import Organization
from pki_project.actor import Actor
from tests.backups.helpers import read_members
from tests.backups.installations import ROOT_PASSWORD, postgres_installation, sqlite_installation


def assert_restored_installation_works(report, source_vendor: str) -> None:
    assert report.source_database_vendor == source_vendor
    assert list(Organization.objects.values_list("slug", flat=True)) == ["source"]
    issuing = CertificateAuthority.objects.get(slug="source-issuing")
    root = CertificateAuthority.objects.get(slug="source-root")
    unlock_root_key(artifact_store(), root.key_directory, ROOT_PASSWORD)
    assert intermediate_signer(issuing) is not None
    operator = Actor.operator("tests")
    issued = issue_certificate(issuing, IssuanceRequest(profile="server", common_name="x.example.com",
                                                        key_type="ec-p256"), actor=operator)
    assert issued.issuer_id == issuing.pk
    generate_crl(issuing, actor=operator)
    assert verify_chain().ok


def restore_from(archive: Path, data_dir: Path):
    report = restore_backup(archive, Actor.operator("tests"))
    # Stored paths are relative: the artifacts now live under *this* data directory and open.
    assert artifact_store().unreadable_artifacts() == {}
    assert any(data_dir.rglob("*.pem.enc"))
    return report


def test_sqlite_backup_restores_here(tmp_path: Path, data_dir: Path, db) -> None:
    source = sqlite_installation(tmp_path)
    source.populate()
    result = source.backup(tmp_path / "from-sqlite.zip")
    assert result["database_vendor"] == "sqlite"
    assert "db/snapshot.sqlite3" in read_members(tmp_path / "from-sqlite.zip")
    report = restore_from(tmp_path / "from-sqlite.zip", data_dir)
    assert_restored_installation_works(report, "sqlite")
    assert connection.vendor in ("sqlite", "postgresql")


def test_postgresql_backup_restores_here(tmp_path: Path, data_dir: Path, db) -> None:
    with postgres_installation(tmp_path) as source:
        source.populate()
        result = source.backup(tmp_path / "from-postgresql.zip")
    assert result["database_vendor"] == "postgresql"
    assert "db/snapshot.sqlite3" not in read_members(tmp_path / "from-postgresql.zip")
    report = restore_from(tmp_path / "from-postgresql.zip", data_dir)
    assert_restored_installation_works(report, "postgresql")
