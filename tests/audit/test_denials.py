"""Refusals on the record (audit.denials): each 403, 404 on a signed-in route, 429 and rbac refusal, within a budget."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.verification import verify_chain
from pki_project import ratelimit
from tests.api.conftest import post_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch, settings) -> SimpleNamespace:
    """The counters' clock, held in the middle of a budget window; `clock.now` moves it."""
    window = settings.PKI_AUDIT_DENIALS_WINDOW
    clock = SimpleNamespace(now=(time.time() // window) * window + window / 2)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def events(action_prefix: str = "") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__startswith=action_prefix).order_by("seq"))


def refusals() -> list[AuditEvent]:
    return [event for event in events() if event.action in ("rbac.deny", "access.deny", "access.deny_suppressed")]


# --- What is recorded, once ---------------------------------------------------------------------------


def test_an_rbac_refusal_is_one_rbac_deny_and_nothing_else(make_principal_client, organization, clock):
    client = make_principal_client("user", organization)
    assert client.get("/api/v1/audit-events/").status_code == 403
    [event] = refusals()
    assert (event.action, event.outcome, event.actor_username) == ("rbac.deny", "failure", client.user.username)
    assert (event.target_type, event.target_id) == ("route", "GET /api/v1/audit-events/")
    assert event.details == {"status": 403, "code": "permission_denied", "path": "/api/v1/audit-events/"}
    assert event.organization_id == organization.pk


def test_a_views_own_403_is_recorded(make_principal_client, organization, clock):
    client = make_principal_client("admin", organization)  # an organization's admin may not create organizations
    response = post_json(client, "/api/v1/organizations/", {"name": "Not Mine"})
    assert response.status_code == 403
    [event] = refusals()
    assert (event.action, event.target_id) == ("access.deny", "POST /api/v1/organizations/")
    assert event.details["status"] == 403
    assert event.details["code"] == response.json()["error"]["code"]
    page = make_principal_client("admin", organization, via="cookie").get("/create-organization",
                                                                           headers={"Accept": "text/html"})
    assert page.status_code == 403
    assert [event.target_id for event in refusals()][-1] == "GET /create-organization"


def test_another_organizations_object_is_a_recorded_404(make_principal_client, organization, other_organization,
                                                         clock):
    client = make_principal_client("manager", organization)
    assert client.get(f"/api/v1/organizations/{other_organization.pk}/").status_code == 404
    [event] = refusals()
    assert (event.action, event.target_id) == ("access.deny", "GET /api/v1/organizations/{id}/")
    path = f"/api/v1/organizations/{other_organization.pk}/"
    assert event.details == {"status": 404, "code": "not_found", "path": path}


def test_unknown_paths_are_recorded_for_signed_in_callers_only(make_principal_client, clock):
    assert Client().get("/api/v1/no-such-thing/").status_code == 404
    assert Client().get("/wp-login.php").status_code == 404
    assert refusals() == []
    client = make_principal_client("manager")
    assert client.get("/api/v1/no-such-thing/").status_code == 404
    [event] = refusals()
    assert (event.action, event.actor_username) == ("access.deny", client.user.username)


def test_public_misses_are_not_refusals(make_principal_client, clock):
    client = make_principal_client("manager")
    for path in ("/pki/ca/nobody.crt", "/pki/crl/nobody.crl", "/static/nothing-here.css"):
        assert client.get(path).status_code == 404, path
        assert Client().get(path).status_code == 404, path
    assert refusals() == []


def test_a_refusal_its_operation_recorded_is_not_recorded_again(make_principal_client, organization, clock):
    from certificates.services.authorities import create_root_ca
    from pki_project.actor import Actor
    from tests.api.conftest import ROOT_PASSWORD

    root_ca = create_root_ca(organization=organization, common_name="Denials Root CA", root_password=ROOT_PASSWORD,
                             key_type="ec-p256", days=3650, path_length=1, actor=Actor.operator("tests"))
    admin = make_principal_client("admin", organization)
    response = post_json(admin, "/api/v1/cas/", {"kind": "intermediate", "parent": root_ca.pk, "name": "Nope CA",
                                                 "root_password": "wrong " * 4})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "unlock_failed"
    assert [event.action for event in events() if event.outcome == "failure"] == ["ca.unlock"]


def test_an_anonymous_csrf_failure_names_the_address(clock):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="192.0.2.44")
    assert client.post("/auth/session", {"api_key": "x"}).status_code == 403  # the form without its token
    [event] = refusals()
    assert (event.action, event.actor_username, event.actor_label) == ("access.deny", "", "anonymous")
    assert event.source_ip == "192.0.2.44"
    assert event.details["code"] == "csrf_failed"


def test_a_405_is_not_a_refusal(make_principal_client, clock):
    response = make_principal_client("user").delete("/api/v1/certificates/")
    assert response.status_code == 405
    assert refusals() == []


def test_an_api_key_in_a_path_is_cut_to_its_prefix(make_principal_client, clock):
    client = make_principal_client("manager")
    leaked = "pki_0123456789ab_" + "S" * 43
    assert client.get(f"/api/v1/{leaked}/").status_code == 404
    [event] = refusals()
    assert event.details["path"] == "/api/v1/pki_0123456789ab_…/"


# --- The budget -------------------------------------------------------------------------------------------


def test_a_flood_is_recorded_up_to_the_budget_then_counted(make_principal_client, organization, settings, clock):
    settings.PKI_AUDIT_DENIALS_PER_WINDOW = 3
    client = make_principal_client("user", organization)
    for _ in range(10):
        assert client.get("/api/v1/audit-events/").status_code == 403
    assert [event.action for event in refusals()] == ["rbac.deny"] * 3 + ["access.deny_suppressed"]
    started = refusals()[-1]
    assert (started.target_type, started.target_id) == ("caller", f"user:{client.user.pk}")
    assert started.details["phase"] == "started"
    assert started.details["kind"] == "rbac"
    assert started.details["route"] == "GET /api/v1/audit-events/"
    assert started.details["recorded"] == 3

    clock.now += 5 * settings.PKI_AUDIT_DENIALS_WINDOW  # some windows later, the same caller again
    assert client.get("/api/v1/audit-events/").status_code == 403
    ended, recorded = refusals()[-2:]
    assert (ended.action, ended.details["phase"], ended.details["suppressed"]) == ("access.deny_suppressed", "ended", 6)
    assert ended.details["window_end"] > ended.details["window_start"]
    assert recorded.action == "rbac.deny"
    assert verify_chain().ok


def test_the_budget_is_per_caller_and_per_kind(make_principal_client, organization, settings, clock):
    settings.PKI_AUDIT_DENIALS_PER_WINDOW = 1
    flooder, bystander = make_principal_client("user", organization), make_principal_client("user", organization)
    for _ in range(5):
        flooder.get("/api/v1/audit-events/")
    flooder.get("/api/v1/organizations/999999/")  # another kind: a 404
    bystander.get("/api/v1/audit-events/")
    recorded = [(event.actor_username, event.action, event.details.get("status")) for event in refusals()]
    assert recorded == [
        (flooder.user.username, "rbac.deny", 403),
        (flooder.user.username, "access.deny_suppressed", 403),
        (flooder.user.username, "access.deny", 404),
        (bystander.user.username, "rbac.deny", 403),
    ]


def test_a_flood_without_suppressed_refusals_writes_no_count(make_principal_client, organization, settings, clock):
    settings.PKI_AUDIT_DENIALS_PER_WINDOW = 2
    client = make_principal_client("user", organization)
    for _ in range(3):  # two recorded, the third is the "started" event: nothing was left out
        client.get("/api/v1/audit-events/")
    clock.now += settings.PKI_AUDIT_DENIALS_WINDOW
    client.get("/api/v1/audit-events/")
    assert [event.action for event in refusals()] == ["rbac.deny", "rbac.deny", "access.deny_suppressed", "rbac.deny"]


def test_anonymous_floods_are_budgeted_per_address(settings, clock):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_AUDIT_DENIALS_PER_WINDOW = 1, 2
    for ip in ("198.51.100.1", "198.51.100.2"):
        for _ in range(6):
            Client(REMOTE_ADDR=ip).post("/auth/session", {"api_key": "pki_0123456789ab_" + "x" * 43},
                                        content_type="application/json")
    by_address = [(event.source_ip, event.action) for event in refusals()]
    assert by_address == [(ip, action) for ip in ("198.51.100.1", "198.51.100.2")
                          for action in ("access.deny", "access.deny", "access.deny_suppressed")]
    assert {event.details.get("status") for event in refusals() if event.action == "access.deny"} == {429}


def test_public_429s_are_budgeted_in_the_cache_not_the_database(settings, clock):
    """The OCSP hot path: its refusals are counted in the cache, so a flood never writes a counter row."""
    from ratelimits.models import Counter

    settings.PKI_PUBLIC_RATE_PER_IP, settings.PKI_AUDIT_DENIALS_PER_WINDOW = 2, 2
    client = Client(REMOTE_ADDR=f"2001:db8::{uuid.uuid4().hex[:4]}")  # the local-memory cache outlives a test
    statuses = [client.get("/pki/ca/nobody.crt").status_code for _ in range(8)]
    assert statuses == [404, 404] + [429] * 6
    assert [event.action for event in refusals()] == ["access.deny", "access.deny", "access.deny_suppressed"]
    assert refusals()[0].target_id == "GET /pki/ca/{ca}.crt"
    assert not Counter.objects.exists()
