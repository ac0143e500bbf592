"""`pki_project.db.write_transaction`: BEGIN … COMMIT on the driver, or `atomic()` where Django has one open.

Each test runs on SQLite and, in the PostgreSQL pass of `make test`, on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.services import record_event
from audit.verification import verify_chain
from certificates.models import Certificate, CertificateKind, KeySource
from organizations.models import Organization
from pki_project import db
from pki_project.db import insert_new, write_transaction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("committed_audit_events_removed")]

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


class Boom(Exception):
    pass


@pytest.fixture
def organization() -> Organization:
    return Organization.objects.create(name="Write Corp", slug="write")


@pytest.fixture
def native_statements(monkeypatch) -> list[str]:
    """The statements write_transaction ran on the driver itself."""
    seen: list[str] = []
    run = db._native_execute

    def spy(connection, sql):
        seen.append(sql)
        return run(connection, sql)

    monkeypatch.setattr(db, "_native_execute", spy)
    return seen


def _row(organization: Organization, serial: str) -> Certificate:
    return Certificate(
        organization=organization, issuer=None, kind=CertificateKind.ROOT_CA, serial=serial, common_name="Root",
        subject="CN=Root", key_type="ec-p256", key_source=KeySource.SERVER, not_before=NOW,
        not_after=NOW + timedelta(days=30), fingerprint_sha256=serial.rjust(64, "0"), der=b"\x30\x00",
        created_by="tests",
    )


def _driver_in_transaction() -> bool:
    raw = connection.connection
    if connection.vendor == "sqlite":
        return raw.in_transaction
    from psycopg.pq import TransactionStatus

    return raw.info.transaction_status != TransactionStatus.IDLE


def _write_row_and_event(organization: Organization, serial: str) -> Certificate:
    row = insert_new(_row(organization, serial))
    record_event("certificate.issue", organization=organization, target_type="certificate",
                 target_id=str(row.pk), target_serial=serial, transaction_open=True)
    return row


def test_commits_the_row_and_its_event_through_the_driver(organization, native_statements) -> None:
    with write_transaction():
        assert _driver_in_transaction()
        assert not connection.in_atomic_block  # Django's machinery was not used
        row = _write_row_and_event(organization, "01")
    assert native_statements[0].startswith("BEGIN")
    assert native_statements[-1] == "COMMIT"
    if connection.vendor == "sqlite":
        assert native_statements[0] == "BEGIN IMMEDIATE"  # the configured transaction_mode: the write lock at once
    assert not _driver_in_transaction()
    assert Certificate.objects.filter(pk=row.pk).exists()
    assert AuditEvent.objects.filter(target_id=str(row.pk)).count() == 1
    assert verify_chain().ok


def _write_then_fail(organization: Organization, serial: str) -> None:
    with write_transaction():
        _write_row_and_event(organization, serial)
        raise Boom


def test_an_error_inside_rolls_back_both_and_is_raised_unchanged(organization, native_statements) -> None:
    with pytest.raises(Boom):
        _write_then_fail(organization, "02")
    assert native_statements[-1] == "ROLLBACK"
    assert not _driver_in_transaction()
    assert not Certificate.objects.filter(serial="02").exists()
    assert AuditEvent.objects.count() == 0
    with write_transaction():  # the connection is usable afterwards
        _write_row_and_event(organization, "03")
    assert Certificate.objects.filter(serial="03").exists()


def test_a_database_error_comes_out_as_djangos_and_leaves_nothing(organization) -> None:
    insert_new(_row(organization, "04"))

    def event_then_duplicate() -> None:
        with write_transaction():
            record_event("certificate.issue", organization=organization, target_serial="dup", transaction_open=True)
            insert_new(_row(organization, "04"))  # the same serial and fingerprint again

    with pytest.raises(IntegrityError):
        event_then_duplicate()
    assert not _driver_in_transaction()
    assert Certificate.objects.filter(serial="04").count() == 1
    assert AuditEvent.objects.filter(target_serial="dup").count() == 0


def test_a_refused_commit_rolls_back_and_leaves_the_connection_usable(organization, native_statements) -> None:
    """Django's foreign keys are deferred to COMMIT on both engines: the commit itself fails here."""
    orphan = _row(organization, "07")
    orphan.organization_id = organization.pk + 1000  # no such organization

    def write_orphan() -> None:
        with write_transaction():
            insert_new(orphan)

    with pytest.raises(IntegrityError):
        write_orphan()
    assert native_statements[-2:] == ["COMMIT", "ROLLBACK"]
    assert not _driver_in_transaction()
    assert not Certificate.objects.filter(serial="07").exists()
    with write_transaction():
        _write_row_and_event(organization, "08")
    assert Certificate.objects.filter(serial="08").exists()


def test_an_atomic_block_inside_the_driver_transaction_fails_loudly(organization) -> None:
    """Django does not know the driver's transaction is open: a nested atomic() must not pass silently."""
    from django.db import Error

    def nested_atomic() -> None:
        with write_transaction(), transaction.atomic():
            insert_new(_row(organization, "09"))

    with pytest.raises(Error):
        nested_atomic()
    assert not _driver_in_transaction()
    assert not Certificate.objects.filter(serial="09").exists()


def test_inside_an_atomic_block_it_is_part_of_the_outer_transaction(organization, native_statements) -> None:
    def inside_atomic() -> None:
        with transaction.atomic():
            with write_transaction():
                _write_row_and_event(organization, "05")
            assert Certificate.objects.filter(serial="05").exists()
            raise Boom  # the outer block rolls back what the finished inner one wrote

    with pytest.raises(Boom):
        inside_atomic()
    assert native_statements == []
    assert not Certificate.objects.filter(serial="05").exists()
    assert AuditEvent.objects.count() == 0


def test_logged_queries_go_through_django(organization, native_statements) -> None:
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as captured, write_transaction():
        _write_row_and_event(organization, "06")
    assert native_statements == []
    statements = " ".join(query["sql"] for query in captured.captured_queries)
    assert 'INSERT INTO "certificates_certificate"' in statements
    assert Certificate.objects.filter(serial="06").exists()


def test_issuance_takes_the_driver_path_and_keeps_the_chain(native_statements) -> None:
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from pki_project.actor import Actor
    from tests.certificates.csrs import make_csr
    from tests.pages.conftest import build_hierarchy

    hierarchy = build_hierarchy(Organization.objects.create(name="Issue Corp", slug="issue"))
    native_statements.clear()
    row = issue_certificate(hierarchy.intermediate, IssuanceRequest(profile="server", csr=make_csr("w.example.com")),
                            actor=Actor.operator("tests"))
    assert (native_statements[0].split()[0], native_statements[-1]) == ("BEGIN", "COMMIT")
    event = AuditEvent.objects.get(target_id=str(row.pk))
    assert (event.action, event.target_serial) == ("certificate.issue", row.serial)
    assert verify_chain().ok
