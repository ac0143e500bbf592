"""Append-only in two layers: the ORM refuses, and the database trigger refuses raw SQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.actions import AuditAction
from audit.models import AppendOnlyError, AuditEvent
from audit.services import record_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def event() -> AuditEvent:
    return record_event(AuditAction.ORGANIZATION_CREATE, target_type="organization", target_id="1")


def test_saving_an_existing_event_is_refused(event: AuditEvent) -> None:
    event.action = AuditAction.LOGIN
    with pytest.raises(AppendOnlyError):
        event.save()


def test_deleting_an_event_is_refused(event: AuditEvent) -> None:
    with pytest.raises(AppendOnlyError):
        event.delete()


@pytest.mark.parametrize(
    "operation",
    [
        lambda qs: qs.update(outcome="failure"),
        lambda qs: qs.delete(),
        lambda qs: qs.bulk_update(list(qs), ["outcome"]),
        lambda qs: qs.update_or_create(seq=1, defaults={"outcome": "failure"}),
        lambda qs: qs.bulk_create([AuditEvent(seq=99)]),
    ],
    ids=["update", "delete", "bulk_update", "update_or_create", "bulk_create"],
)
def test_queryset_write_paths_are_refused(event: AuditEvent, operation) -> None:
    with pytest.raises(AppendOnlyError):
        operation(AuditEvent.objects.all())
    assert AuditEvent.objects.get().outcome == "success"


def test_a_hand_built_event_with_a_wrong_hash_is_refused(event: AuditEvent) -> None:
    forged = AuditEvent(seq=2, prev_hash=event.hash, created_at=event.created_at, action="auth.login",
                        outcome="success", hash="f" * 64)
    with pytest.raises(AppendOnlyError, match="hash mismatch"):
        forged.save()


def _raw(sql: str, params: list[object]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_sql_update_is_refused_by_the_trigger(event: AuditEvent) -> None:
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_auditevent SET outcome = %s WHERE id = %s", ["failure", event.pk])
    assert AuditEvent.objects.get().outcome == "success"


def test_raw_sql_delete_is_refused_by_the_trigger(event: AuditEvent) -> None:
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.count() == 1


def test_truncate_is_refused_on_postgresql(event: AuditEvent) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL (SQLite's DELETE trigger covers it)")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("TRUNCATE audit_auditevent", [])
    assert AuditEvent.objects.count() == 1
