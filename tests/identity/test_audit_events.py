"""Each identity action leaves exactly one audit event, with no secret in it."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from organizations.models import ApiKey
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db


class Events:
    """New events since creation, by action."""

    def __init__(self) -> None:
        self.start = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    def new(self, action: str | None = None):
        events = AuditEvent.objects.filter(seq__gt=self.start).order_by("seq")
        return list(events.filter(action=action) if action else events)


def no_secret_in(event, *secrets: str) -> None:
    stored = json.dumps({field.name: str(getattr(event, field.name)) for field in event._meta.fields})
    for secret in secrets:
        assert secret not in stored


def test_login_success_and_failure(organization):
    key = ApiKeyFactory(user=UserFactory(role="manager", organization=organization))
    events = Events()
    response = Client().post("/auth/session", {"api_key": key.plain_key}, content_type="application/json")
    token = response.json()["token"]
    (login,) = events.new()
    assert (login.action, login.outcome) == ("auth.login", "success")
    assert login.actor_username == key.user.username
    assert login.organization_id == organization.pk
    assert login.actor_label == key.prefix
    no_secret_in(login, key.plain_key, token)

    events = Events()
    wrong = key.plain_key[:-1] + ("a" if key.plain_key[-1] != "a" else "b")
    Client().post("/auth/session", {"api_key": wrong}, content_type="application/json")
    (failure,) = events.new()
    assert (failure.action, failure.outcome) == ("auth.login", "failure")
    assert failure.actor_label == key.prefix
    no_secret_in(failure, wrong)


def test_logout(make_principal_client):
    client = make_principal_client("user", via="cookie")
    events = Events()
    client.delete("/auth/session")
    (logout,) = events.new()
    assert (logout.action, logout.outcome) == ("auth.logout", "success")
    assert logout.actor_username == client.user.username


def test_api_key_create_and_revoke(organization):
    events = Events()
    out = json.loads(_call("create_api_key", "--user", "gina", "--role", "user",
                           "--organization", organization.slug, "--json"))
    (create,) = events.new("api_key.create")
    assert create.target_id == str(out["id"])
    assert create.details["prefix"] == out["prefix"]
    no_secret_in(create, out["key"])
    events = Events()
    _call("revoke_api_key", str(out["id"]))
    (revoke,) = events.new()
    assert (revoke.action, revoke.target_id) == ("api_key.revoke", str(out["id"]))
    events = Events()
    _call("revoke_api_key", str(out["id"]))  # already revoked: nothing new happened, nothing recorded
    assert events.new() == []


def test_organization_create(make_principal_client):
    client = make_principal_client("admin")
    events = Events()
    response = client.post("/api/v1/organizations/", {"name": "Audited"}, content_type="application/json")
    (event,) = events.new()
    assert (event.action, event.outcome) == ("organization.create", "success")
    assert event.target_id == str(response.json()["id"])
    assert event.actor_username == client.user.username


def test_rbac_deny_for_an_authenticated_principal(make_principal_client):
    client = make_principal_client("user")
    events = Events()
    assert client.post("/api/v1/organizations/", {"name": "No"}, content_type="application/json").status_code == 403
    (event,) = events.new()
    assert (event.action, event.outcome) == ("rbac.deny", "failure")
    assert event.target_id == "POST /api/v1/organizations/"
    events = Events()
    Client().post("/api/v1/organizations/", {"name": "No"}, content_type="application/json")  # anonymous: 401
    assert events.new() == []


def test_failed_write_leaves_no_success_event(make_principal_client):
    """The event shares the write's transaction: a refused creation records nothing."""
    client = make_principal_client("admin")
    client.post("/api/v1/organizations/", {"name": "Once"}, content_type="application/json")
    events = Events()
    assert client.post("/api/v1/organizations/", {"name": "Once"},
                       content_type="application/json").status_code == 409
    assert events.new() == []
    assert ApiKey.objects.count() == 1


def _call(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
