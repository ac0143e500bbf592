"""The admin lists audit events read-only: no add, change or delete for anyone, scoped like the API."""

from __future__ import annotations

import pytest

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import record_event

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def events(organization, other_organization) -> dict[str, AuditEvent]:
    return {
        "ours": record_event(AuditAction.CERTIFICATE_ISSUE, organization_id=organization.pk, actor_label="cli",
                             target_type="certificate", target_id="1", target_serial="0a1b"),
        "theirs": record_event(AuditAction.CERTIFICATE_REVOKE, organization_id=other_organization.pk,
                               actor_label="cli", target_type="certificate", target_id="2"),
    }


def change_url(event: AuditEvent) -> str:
    return f"{CHANGELIST}{event.pk}/change/"


def test_global_admin_lists_every_event_with_filters(make_principal_client, events) -> None:
    client = make_principal_client("admin")
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    shown = {event.pk for event in response.context["cl"].result_list}
    assert {events["ours"].pk, events["theirs"].pk} <= shown
    content = response.content.decode()
    for heading in ("By action", "By outcome", "By organization slug", "By created at", "By actor username"):
        assert heading in content
    filtered = client.get(CHANGELIST, {"action": "certificate.revoke", "outcome": "success"})
    assert [event.pk for event in filtered.context["cl"].result_list] == [events["theirs"].pk]
    searched = client.get(CHANGELIST, {"q": "0a1b"})
    assert [event.pk for event in searched.context["cl"].result_list] == [events["ours"].pk]


def test_manager_sees_only_their_organization(make_principal_client, organization, events) -> None:
    client = make_principal_client("manager", organization)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    shown = {event.pk for event in response.context["cl"].result_list}
    assert events["ours"].pk in shown
    assert events["theirs"].pk not in shown
    assert client.get(change_url(events["ours"])).status_code == 200
    assert client.get(change_url(events["theirs"])).status_code in {302, 404}


def test_read_only_user_has_no_audit_admin(make_principal_client, organization, events) -> None:
    client = make_principal_client("user", organization)
    assert client.get(CHANGELIST).status_code == 403


def test_even_a_global_admin_cannot_add_change_or_delete(make_principal_client, events) -> None:
    client = make_principal_client("admin")
    event = events["ours"]
    page = client.get(change_url(event))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode(), "the detail page is read-only"
    assert client.post(change_url(event), {"outcome": "failure"}).status_code == 403
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [event.pk]})
    assert bulk.status_code in {200, 302}
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash
    assert AuditEvent.objects.filter(pk__in=[e.pk for e in events.values()]).count() == 2
