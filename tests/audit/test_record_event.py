"""record_event: what an event captures, how it chains, and what it refuses."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import RequestFactory

from audit.actions import AuditAction
from audit.canonical import GENESIS_HASH, compute_hash
from audit.details import SecretInDetailsError
from audit.models import AuditEvent
from audit.services import record_event
from organizations.models import Organization
from organizations.principal import Principal
from organizations.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def organization() -> Organization:
    return Organization.objects.create(name="Acme", slug="acme")


def test_first_event_starts_the_chain_at_seq_one() -> None:
    event = record_event(AuditAction.BACKUP_CREATE, actor_label="system")
    assert event.seq == 1
    assert event.prev_hash == GENESIS_HASH
    assert len(event.hash) == 64
    assert event.actor_label == "system"
    assert event.created_at.utcoffset().total_seconds() == 0


def test_each_event_links_to_the_previous_one() -> None:
    first = record_event(AuditAction.BACKUP_CREATE)
    second = record_event(AuditAction.BACKUP_RESTORE, outcome="failure")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert second.outcome == "failure"


def test_request_supplies_principal_ip_and_user_agent(organization: Organization) -> None:
    request = RequestFactory().post("/api/v1/x", HTTP_USER_AGENT="curl/8.0", REMOTE_ADDR="10.0.0.7")
    request.principal = Principal(user_id=7, username="alice", role=Role.MANAGER,
                                  organization_id=organization.pk, api_key_id=3)
    event = record_event(AuditAction.CERTIFICATE_REVOKE, request=request, target_type="certificate",
                         target_id="12", target_serial="0a1b", details={"reason": "keyCompromise"})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_user_id, stored.actor_username, stored.actor_api_key_id, stored.actor_role) == (
        7, "alice", 3, "manager")
    assert (stored.organization_id, stored.organization_slug) == (organization.pk, "acme")
    assert (stored.source_ip, stored.user_agent) == ("10.0.0.7", "curl/8.0")
    assert (stored.target_type, stored.target_id, stored.target_serial) == ("certificate", "12", "0a1b")
    assert stored.details == {"reason": "keyCompromise"}
    assert stored.compute_hash() == stored.hash


def test_explicit_principal_wins_over_the_request(organization: Organization) -> None:
    request = RequestFactory().get("/")
    request.principal = Principal(user_id=1, username="from-request", role=Role.USER, organization_id=None)
    explicit = Principal(user_id=2, username="explicit", role=Role.ADMIN, organization_id=None)
    event = record_event(AuditAction.LOGIN, request=request, principal=explicit, organization_id=organization.pk)
    assert (event.actor_username, event.actor_role) == ("explicit", "admin")
    assert event.organization_id == organization.pk


def test_unauthenticated_attempt_records_a_label_and_no_user() -> None:
    request = RequestFactory().post("/auth/session", REMOTE_ADDR="::ffff:192.0.2.1")
    event = record_event(AuditAction.LOGIN, request=request, outcome="failure", actor_label="pki_ab12")
    assert (event.actor_user_id, event.actor_username, event.actor_label) == (None, "", "pki_ab12")
    assert event.source_ip == "::ffff:c000:201"


def test_hash_survives_the_round_trip_through_the_database() -> None:
    event = record_event(AuditAction.CRL_GENERATE, details={
        "number": 2**62, "ratio": 1e20, "nested": {"list": [1, "two", None, True]}, "text": "ünïcødé \x00",
        "broken": "lone \ud800 surrogate",
    })
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.details["ratio"] == "1e+20"
    assert stored.details["text"] == "ünïcødé "
    assert stored.details["broken"] == "lone ? surrogate"
    assert compute_hash(stored.hash_record()) == event.hash


@pytest.mark.parametrize("key", ["password", "root_password", "PKCS12-Password", "private_key", "token", "api_key"])
def test_secret_looking_details_are_refused(key: str) -> None:
    with pytest.raises(SecretInDetailsError):
        record_event(AuditAction.PKCS12_PASSWORD_REVEAL, details={"nested": {key: "x"}})
    assert not AuditEvent.objects.exists()


def test_unknown_action_and_outcome_are_refused() -> None:
    with pytest.raises(ValueError, match="not a valid"):
        record_event("made.up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid"):
        record_event(AuditAction.LOGIN, outcome="maybe")  # type: ignore[arg-type]


def _issue_then_fail() -> None:
    with transaction.atomic():
        record_event(AuditAction.CERTIFICATE_ISSUE, target_type="certificate", target_id="1")
        raise RuntimeError("the issuance failed after the event was written")


def test_rolled_back_operation_leaves_no_event() -> None:
    record_event(AuditAction.BACKUP_CREATE)
    with pytest.raises(RuntimeError, match="issuance failed"):
        _issue_then_fail()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["backup.create"]
    follow_up = record_event(AuditAction.BACKUP_CREATE)
    assert follow_up.seq == 2, "the rolled-back event leaves no gap in the sequence"


def test_nested_savepoints_inside_an_outer_transaction_keep_the_chain_linear() -> None:
    with transaction.atomic():
        first = record_event(AuditAction.BACKUP_CREATE)
        try:
            with transaction.atomic():
                record_event(AuditAction.CERTIFICATE_ISSUE)
                raise RuntimeError("inner step fails")
        except RuntimeError:
            pass
        third = record_event(AuditAction.BACKUP_RESTORE)
    assert (first.seq, third.seq) == (1, 2)
    assert third.prev_hash == first.hash
