"""GET /api/v1/audit-events/: managers and admins only, scoped to their organization, paginated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import record_event

pytestmark = pytest.mark.django_db

LIST = "/api/v1/audit-events/"


def detail(event: AuditEvent) -> str:
    return f"{LIST}{event.pk}/"


@pytest.fixture
def events(organization, other_organization) -> dict[str, AuditEvent]:
    """One event in each organization and one without any, recorded after the callers' own key events."""
    return {
        "ours": record_event(AuditAction.CERTIFICATE_ISSUE, organization_id=organization.pk, actor_label="cli",
                             target_type="certificate", target_id="1", target_serial="0A1B"),
        "theirs": record_event(AuditAction.CERTIFICATE_REVOKE, organization_id=other_organization.pk,
                               actor_label="cli", target_type="certificate", target_id="2", outcome="failure"),
        "global": record_event(AuditAction.BACKUP_CREATE, actor_label="system"),
    }


def listed_ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["results"]}


def test_anonymous_caller_is_refused() -> None:
    response = Client().get(LIST)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_read_only_user_is_refused_and_the_denial_is_recorded(make_principal_client, organization, events) -> None:
    client = make_principal_client("user", organization)
    assert client.get(LIST).status_code == 403
    assert client.get(detail(events["ours"])).status_code == 403
    denials = AuditEvent.objects.filter(action=AuditAction.RBAC_DENY, actor_username=client.user.username)
    assert denials.count() == 2
    assert denials.first().outcome == "failure"


def test_manager_sees_only_their_organization(make_principal_client, organization, events) -> None:
    client = make_principal_client("manager", organization)
    ids = listed_ids(client.get(LIST))
    assert events["ours"].pk in ids
    assert not ids & {events["theirs"].pk, events["global"].pk}
    assert set(AuditEvent.objects.filter(pk__in=ids).values_list("organization_id", flat=True)) == {organization.pk}


def test_organization_admin_sees_only_their_organization(make_principal_client, organization, events) -> None:
    ids = listed_ids(make_principal_client("admin", organization).get(LIST))
    assert events["ours"].pk in ids
    assert events["theirs"].pk not in ids


def test_global_admin_sees_everything_newest_first(make_principal_client, events) -> None:
    response = make_principal_client("admin").get(LIST)
    ids = listed_ids(response)
    assert {event.pk for event in events.values()} <= ids
    seqs = [item["seq"] for item in response.json()["results"]]
    assert seqs == sorted(seqs, reverse=True)


def test_detail_shows_every_field_and_hides_other_organizations(make_principal_client, organization, events) -> None:
    client = make_principal_client("manager", organization)
    response = client.get(detail(events["ours"]))
    assert response.status_code == 200
    body = response.json()
    assert (body["seq"], body["action"], body["target_serial"], body["hash"]) == (
        events["ours"].seq, "certificate.issue", "0A1B", events["ours"].hash)
    assert body["created_at"].endswith("Z")
    assert client.get(detail(events["theirs"])).status_code == 404
    assert client.get(detail(events["global"])).status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=certificate.revoke", {"theirs"}),
        ("outcome=failure", {"theirs"}),
        ("target_serial=0a1b", {"ours"}),
        ("target_type=certificate&target_id=1", {"ours"}),
        ("actor=nobody-by-that-name", set()),
    ],
)
def test_filters(make_principal_client, events, query: str, expected: set[str]) -> None:
    ids = listed_ids(make_principal_client("admin").get(f"{LIST}?{query}"))
    assert ids & {event.pk for event in events.values()} == {events[name].pk for name in expected}


def test_filter_by_organization_slug_or_id_actor_and_dates(make_principal_client, organization, events) -> None:
    client = make_principal_client("admin")
    for value in (organization.slug, str(organization.pk)):
        ids = listed_ids(client.get(LIST, {"organization": value}))
        assert events["ours"].pk in ids
        assert events["theirs"].pk not in ids
    by_actor = listed_ids(client.get(LIST, {"actor": client.user.username}))
    assert by_actor == set(AuditEvent.objects.filter(actor_username=client.user.username).values_list("pk", flat=True))
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert listed_ids(client.get(LIST, {"since": tomorrow})) == set()
    assert listed_ids(client.get(LIST, {"until": tomorrow})) >= {event.pk for event in events.values()}


def test_bad_filter_value_is_a_400_in_the_error_format(make_principal_client) -> None:
    response = make_principal_client("admin").get(LIST, {"action": "made.up"})
    assert response.status_code == 400
    assert "error" in response.json()
    response = make_principal_client("admin").get(LIST, {"since": "not-a-date"})
    assert response.status_code == 400


def test_pages_are_bounded_and_follow_the_chain_backwards(make_principal_client) -> None:
    for index in range(5):
        record_event(AuditAction.CRL_GENERATE, actor_label="cli", target_id=str(index))
    client = make_principal_client("admin")
    head = AuditEvent.objects.newest_first().first().seq
    first = client.get(LIST, {"page_size": 2}).json()
    assert [item["seq"] for item in first["results"]] == [head, head - 1]
    second = client.get(first["next"]).json()
    assert [item["seq"] for item in second["results"]] == [head - 2, head - 3]
    assert len(client.get(LIST, {"page_size": 100_000}).json()["results"]) <= 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_cannot_write_or_delete_events(make_principal_client, events, method: str) -> None:
    client = make_principal_client("admin")
    before = AuditEvent.objects.filter(action=AuditAction.CERTIFICATE_ISSUE).count()
    response = getattr(client, method)(detail(events["ours"]), data={}, content_type="application/json")
    assert response.status_code in {403, 405}
    assert getattr(client, method)(LIST, data={}, content_type="application/json").status_code in {403, 405}
    assert AuditEvent.objects.filter(action=AuditAction.CERTIFICATE_ISSUE).count() == before
    assert AuditEvent.objects.get(pk=events["ours"].pk).hash == events["ours"].hash


@pytest.mark.parametrize(
    "query",
    [
        {"organization": "²"},
        {"organization": "9" * 40},
        {"actor": "a\x00b"},
        {"target_serial": "\x00"},
        {"since": "9999-99-99"},
        {"until": "2026-13-01T25:00:00Z"},
        {"page_size": "-1"},
        {"page_size": "many"},
        {"cursor": "not-a-cursor"},
    ],
    ids=lambda query: repr(query),
)
def test_hostile_query_values_never_answer_5xx(make_principal_client, events, query: dict[str, str]) -> None:
    response = make_principal_client("admin").get(LIST, query)
    assert response.status_code in {200, 400, 404}, response.content
    assert "error" in response.json() or "results" in response.json()
