"""POST /api/v1/certificates/ with Idempotency-Key: a retried request never issues twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from certificates.idempotency import KEY_TTL, STALE_CLAIM, IdempotencyKey
from certificates.models import Certificate
from tests.api.conftest import make_csr, post_json, snapshot
from tests.conftest import running_on_postgres

pytestmark = pytest.mark.django_db

URL = "/api/v1/certificates/"


@pytest.fixture
def body(intermediate_ca) -> dict:
    return {"ca": intermediate_ca.slug, "profile": "server", "csr": make_csr("retry.example.com").decode()}


def _issue(client, body, key="order-42"):
    return post_json(client, URL, body, headers={"Idempotency-Key": key})


def test_retry_returns_the_first_certificate_and_issues_nothing(clients, body, data_dir):
    first = _issue(clients["manager"], body)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    before = snapshot(data_dir)
    issues = AuditEvent.objects.filter(action="certificate.issue").count()
    for _retry in range(3):
        again = _issue(clients["manager"], body)
        assert again.status_code == 201
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["serial"] == first.json()["serial"]
    assert snapshot(data_dir) == before
    assert AuditEvent.objects.filter(action="certificate.issue").count() == issues


def test_same_key_with_another_body_is_refused(clients, body, data_dir):
    assert _issue(clients["manager"], body).status_code == 201
    before = snapshot(data_dir)
    response = _issue(clients["manager"], {**body, "days": 10})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert snapshot(data_dir) == before


def test_keys_belong_to_their_user(clients, body, make_principal_client, organization):
    first = _issue(clients["manager"], body)
    second = _issue(make_principal_client("manager", organization), body)
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


def test_without_a_key_every_request_issues(clients, body):
    ids = {post_json(clients["manager"], URL, body).json()["id"] for _ in range(2)}
    assert len(ids) == 2


def test_a_failed_issuance_releases_the_key(clients, body, data_dir):
    refused = _issue(clients["manager"], {**body, "days": 100000 // 10})
    assert refused.status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert _issue(clients["manager"], {**body, "days": 100000 // 10}).status_code == 400
    assert _issue(clients["manager"], {**body, "days": 100000 // 10}).status_code == 400


def test_invalid_body_claims_no_key(clients, body):
    assert _issue(clients["manager"], {**body, "profile": "nope"}).status_code == 400
    assert not IdempotencyKey.objects.exists()


def test_another_organizations_ca_under_a_key_issues_nothing(clients, other_hierarchy, body, data_dir):
    before = snapshot(data_dir)
    response = _issue(clients["manager"], {**body, "ca": other_hierarchy[1].slug})
    assert response.status_code == 404
    assert snapshot(data_dir) == before
    assert not IdempotencyKey.objects.exists()


def test_a_request_in_progress_answers_409(clients, body):
    from certificates.idempotency import fingerprint

    IdempotencyKey.objects.create(user=clients["manager"].user, key="order-42",
                                  request_fingerprint=fingerprint(body, path=URL),
                                  created_at=timezone.now())
    count = Certificate.objects.count()
    response = _issue(clients["manager"], body)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
    assert Certificate.objects.count() == count


def test_an_abandoned_claim_is_taken_over(clients, body):
    from certificates.idempotency import fingerprint

    IdempotencyKey.objects.create(user=clients["manager"].user, key="order-42",
                                  request_fingerprint=fingerprint(body, path=URL),
                                  created_at=timezone.now() - STALE_CLAIM - timedelta(seconds=1))
    assert _issue(clients["manager"], body).status_code == 201
    assert IdempotencyKey.objects.get().response_status == 201


def test_keys_expire_after_24_hours(clients, body):
    first = _issue(clients["manager"], body).json()
    IdempotencyKey.objects.update(created_at=timezone.now() - KEY_TTL - timedelta(seconds=1))
    again = _issue(clients["manager"], body)
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["id"] != first["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "ünïcode"])
def test_malformed_keys_are_refused(clients, body, key, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["manager"], URL, body, headers={"Idempotency-Key": key.encode().decode("latin-1")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert snapshot(data_dir) == before


def test_concurrent_claims_one_wins(clients, body):
    """The unique constraint settles the race: the second insert loses and reads the first claim."""
    from certificates.idempotency import _claim, fingerprint

    user_id, now = clients["manager"].user.pk, timezone.now()
    assert _claim(user_id, "race", fingerprint(body), now) is not None
    assert _claim(user_id, "race", fingerprint(body), now) is None
    assert IdempotencyKey.objects.filter(key="race").count() == 1


@pytest.mark.skipif(not running_on_postgres(), reason="needs concurrent connections (runs in the PostgreSQL pass)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_issue_once(committed_audit_events_removed, make_principal_client, organization,
                                       intermediate_ca):
    """Two identical requests at the same instant, from two connections: one certificate, never two."""
    from django.db import connection

    client = make_principal_client("manager", organization)
    body = {"ca": intermediate_ca.slug, "profile": "server", "csr": make_csr("race.example.com").decode()}
    barrier, results = threading.Barrier(4), []

    def send() -> None:
        try:
            barrier.wait(timeout=30)
            response = _issue(client, body, key="race-1")
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    before = Certificate.objects.count()
    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 4
    assert Certificate.objects.count() == before + 1
    issued_ids = {body["id"] for status, body in results if status == 201}
    assert len(issued_ids) == 1
    assert all(status == 201 or body["error"]["code"] == "idempotency_in_progress" for status, body in results)


def test_expired_keys_of_the_user_are_purged_at_the_next_claim(clients, body):
    from certificates.idempotency import purge_expired

    _issue(clients["manager"], body, key="old-1")
    IdempotencyKey.objects.update(created_at=timezone.now() - KEY_TTL - timedelta(minutes=1))
    _issue(clients["manager"], body, key="new-1")
    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {"new-1"}
    IdempotencyKey.objects.update(created_at=timezone.now() - KEY_TTL - timedelta(minutes=1))
    assert purge_expired() == 1
