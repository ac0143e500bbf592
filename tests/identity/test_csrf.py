"""CSRF policy: cookie-authenticated writes need the token or XHR from the same origin; Bearer needs neither."""

from __future__ import annotations

import pytest
from django.test import Client

from organizations.models import Organization

pytestmark = pytest.mark.django_db
URL = "/api/v1/organizations/"


@pytest.fixture
def cookie_client(make_principal_client):
    return make_principal_client("admin", via="cookie", enforce_csrf_checks=True)


def create(client: Client, name: str, **headers):
    return client.post(URL, {"name": name}, content_type="application/json", headers=headers)


def csrf_token(client: Client) -> str:
    client.get("/auth/login")  # the login page sets the CSRF cookie
    return client.cookies["csrftoken"].value


def test_cookie_post_without_token_or_header_is_refused_and_changes_nothing(cookie_client):
    response = create(cookie_client, "No Token")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert not Organization.objects.filter(name="No Token").exists()


def test_cookie_post_with_the_csrf_token_is_accepted(cookie_client):
    token = csrf_token(cookie_client)
    response = create(cookie_client, "With Token", **{"X-CSRFToken": token})
    assert response.status_code == 201
    assert Organization.objects.filter(name="With Token").exists()


def test_cookie_post_with_xhr_header_from_same_origin_is_accepted(cookie_client):
    response = create(cookie_client, "Script", **{"X-Requested-With": "XMLHttpRequest", "Origin": "http://testserver"})
    assert response.status_code == 201
    response = create(cookie_client, "Script Referer", **{"X-Requested-With": "XMLHttpRequest",
                                                          "Referer": "http://testserver/admin/"})
    assert response.status_code == 201


@pytest.mark.parametrize("headers", [
    {"X-Requested-With": "XMLHttpRequest"},  # no Origin nor Referer
    {"X-Requested-With": "XMLHttpRequest", "Origin": "https://evil.example"},
    {"X-Requested-With": "XMLHttpRequest", "Origin": "null"},
    {"X-Requested-With": "XMLHttpRequest", "Referer": "http://testserver.evil.example/"},
    {"Origin": "http://testserver"},  # same origin but no XHR header and no token
    {"X-CSRFToken": "wrong-token-value-0123456789abcdef0123456789abcdef0123"},
])
def test_cookie_post_with_insufficient_proof_is_refused(cookie_client, headers):
    csrf_token(cookie_client)
    response = create(cookie_client, "Refused", **headers)
    assert response.status_code == 403
    assert not Organization.objects.filter(name="Refused").exists()


def test_cookie_delete_session_needs_csrf_too(cookie_client):
    response = cookie_client.delete("/auth/session")
    assert response.status_code == 403
    assert cookie_client.get(URL).status_code == 200  # still signed in


def test_bearer_post_needs_neither_token_nor_header(make_principal_client):
    client = make_principal_client("admin", via="bearer", enforce_csrf_checks=True)
    response = create(client, "Bearer Org")
    assert response.status_code == 201


def test_bearer_wins_over_a_cookie(make_principal_client):
    """With both, the Bearer credential authenticates and no CSRF proof is needed."""
    cookie = make_principal_client("admin", via="cookie", enforce_csrf_checks=True)
    bearer = make_principal_client("admin", via="bearer")
    response = cookie.post(URL, {"name": "Both"}, content_type="application/json",
                           headers={"Authorization": f"Bearer {bearer.plain_key}"})
    assert response.status_code == 201


def test_login_form_needs_the_csrf_token(make_principal_client):
    key = make_principal_client("user").plain_key
    client = Client(enforce_csrf_checks=True)
    assert client.post("/auth/session", {"api_key": key}).status_code == 403
    token = csrf_token(client)
    response = client.post("/auth/session", {"api_key": key, "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_json_login_needs_no_csrf_token(make_principal_client):
    key = make_principal_client("user").plain_key
    client = Client(enforce_csrf_checks=True)
    response = client.post("/auth/session", {"api_key": key}, content_type="application/json")
    assert response.status_code == 200
