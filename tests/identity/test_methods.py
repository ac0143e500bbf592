"""A route that exists but does not take the method: 405 with `Allow`, for every caller, and no audit event."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from organizations.models import Organization
from pki_project.middleware.rbac import parse_policy

pytestmark = pytest.mark.django_db


def test_an_api_route_answers_405_with_what_it_takes(make_principal_client, organization):
    client = make_principal_client("admin", organization)
    before = AuditEvent.objects.count()
    response = client.delete("/api/v1/certificates/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert response.json()["error"] == {"code": "method_not_allowed",
                                        "message": "DELETE is not allowed here; use GET, HEAD, OPTIONS, POST."}
    assert AuditEvent.objects.count() == before  # neither rbac.deny nor access.deny


def test_every_role_and_anonymous_callers_get_the_same_405(make_principal_client, organization):
    url = f"/api/v1/organizations/{organization.pk}/"
    callers = [Client(), *(make_principal_client(role, organization) for role in ("user", "manager", "admin"))]
    for client in callers:
        response = client.put(url, {"name": "Renamed"}, content_type="application/json")
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert Organization.objects.get(pk=organization.pk).name == organization.name
    assert not AuditEvent.objects.filter(action__in=["rbac.deny", "access.deny"]).exists()


def test_function_views_list_the_methods_rbac_json_grants():
    response = Client().put("/auth/session", b"{}", content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "DELETE, POST"
    assert Client().get("/auth/logout").status_code == 405


def test_a_page_answers_405_as_a_page(make_principal_client):
    client = make_principal_client("manager", via="cookie")
    response = client.post("/toolbox", {}, headers={"Accept": "text/html"})
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert b"Method not allowed" in response.content


def test_an_unknown_method_answers_405(make_principal_client):
    response = make_principal_client("user").generic("BREW", "/api/v1/certificates/")
    assert response.status_code == 405


def test_head_and_options_follow_get(make_principal_client):
    client = make_principal_client("user")
    assert client.head("/api/v1/certificates/").status_code == 200
    assert client.options("/api/v1/certificates/").status_code == 200
    assert client.head("/api/v1/cas/1/crl/").status_code == 405  # a POST-only route


def test_a_role_the_route_does_not_list_is_still_a_403(make_principal_client):
    response = make_principal_client("user").post("/api/v1/certificates/", {}, content_type="application/json")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="rbac.deny").count() == 1


def test_methods_for_reads_exact_entries_subtrees_and_wildcards():
    policy = parse_policy('{"GET /a": ["user"], "POST /a": ["admin"], "* /admin/{path*}": ["admin"], '
                          '"GET /static/{path*}": ["public"]}')
    assert policy.methods_for("/a") == {"GET", "HEAD", "OPTIONS", "POST"}
    assert policy.methods_for("/static/x.css") == {"GET", "HEAD", "OPTIONS"}
    assert policy.methods_for("/admin/anything/") == {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}
    assert policy.methods_for("/nowhere") == frozenset()
