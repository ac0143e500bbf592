"""Generic errors without internal detail; the Django admin behind the API-key login and the roles."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from certificates.demo import bootstrap_demo
from organizations.models import ApiKey
from pki_project.middleware.rbac import load_policy
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def boom_site(settings, tmp_path):
    entries = json.loads(Path(django_settings.PKI_RBAC_FILE).read_text())
    entries.update({"GET /api/v1/boom/": ["admin", "manager", "user"], "GET /boom": ["public"]})
    rbac = tmp_path / "rbac.json"
    rbac.write_text(json.dumps(entries))
    settings.PKI_RBAC_FILE = rbac
    settings.ROOT_URLCONF = "tests.identity.boom_urls"
    yield
    load_policy.cache_clear()


def test_a_server_error_reaches_the_client_as_a_generic_json_error(boom_site, make_principal_client, caplog):
    client = make_principal_client("user")
    client.raise_request_exception = False
    response = client.get("/api/v1/boom/")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "server_error", "message": "Internal server error."}}
    assert "internal detail" in caplog.text  # the log keeps the detail
    assert "Traceback" in caplog.text or "RuntimeError" in caplog.text


def test_a_server_error_page_is_generic(boom_site):
    client = Client(raise_request_exception=False)
    response = client.get("/boom", headers={"Accept": "text/html"})
    assert response.status_code == 500
    body = response.content.decode()
    assert "Server error" in body
    assert "internal detail" not in body
    assert "RuntimeError" not in body
    assert response["Content-Security-Policy"]


def test_not_found_page_and_json():
    page = Client().get("/definitely-missing", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert b"Not found" in page.content
    assert Client().get("/api/v1/missing/").json() == {"error": {"code": "not_found", "message": "Not found."}}


# --- Admin ----------------------------------------------------------------------------------------


def test_admin_login_is_the_api_key_login():
    response = Client().get("/admin/login/?next=/admin/organizations/")
    assert response.status_code == 302
    assert response["Location"].startswith("/auth/login?next=")
    response = Client().get("/admin/organizations/")
    assert response["Location"] == "/auth/login?next=%2Fadmin%2Forganizations%2F"
    login_page = Client().get(response["Location"])
    assert b'name="next" value="/admin/organizations/"' in login_page.content


def test_form_login_then_admin_then_logout(organization):
    key = ApiKeyFactory(user=UserFactory(role="manager", organization=organization))
    client = Client()
    response = client.post("/auth/session", {"api_key": key.plain_key, "next": "/admin/"})
    assert response["Location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200
    assert b"Log out" in page.content or b"logout" in page.content
    assert client.post("/admin/logout/")["Location"] == "/auth/login"
    assert client.get("/admin/")["Location"].startswith("/auth/login")


def test_roles_become_django_permissions(make_principal_client, organization, other_organization):
    user = make_principal_client("user", organization)
    assert user.get("/admin/organizations/organization/").status_code == 200
    assert user.get("/admin/organizations/organization/add/").status_code == 403
    assert user.get("/admin/auth/user/").status_code == 403
    manager = make_principal_client("manager", organization)
    assert manager.get("/admin/organizations/apikey/").status_code == 200
    assert manager.get("/admin/auth/user/").status_code == 403
    listed = manager.get("/admin/organizations/organization/").content.decode()
    assert organization.name in listed
    assert other_organization.name not in listed
    other = manager.get(f"/admin/organizations/organization/{other_organization.pk}/change/")
    assert other.status_code in (302, 404)  # Django's admin redirects "does not exist" to its index
    assert other_organization.name not in other.content.decode()
    admin = make_principal_client("admin")
    assert admin.get("/admin/auth/user/").status_code == 200


def test_api_keys_are_listed_never_shown_and_revoked_by_action(make_principal_client, organization):
    victim = ApiKeyFactory(user=UserFactory(role="user", organization=organization))
    admin = make_principal_client("admin")
    listing = admin.get("/admin/organizations/apikey/").content.decode()
    assert victim.prefix in listing
    assert victim.plain_key not in listing
    assert victim.key_hash not in listing
    detail = admin.get(f"/admin/organizations/apikey/{victim.pk}/change/").content.decode()
    assert victim.key_hash not in detail
    assert admin.get("/admin/organizations/apikey/add/").status_code == 403
    response = admin.post("/admin/organizations/apikey/", {"action": "revoke", "_selected_action": [victim.pk]})
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=victim.pk).revoked_at is not None
    assert Client(headers={"Authorization": f"Bearer {victim.plain_key}"}).get(
        "/api/v1/organizations/").status_code == 401


def test_organization_admin_revokes_only_their_organization_keys(make_principal_client, organization,
                                                                 other_organization):
    ours = ApiKeyFactory(user=UserFactory(role="user", organization=organization))
    theirs = ApiKeyFactory(user=UserFactory(role="user", organization=other_organization))
    org_admin = make_principal_client("admin", organization)
    listing = org_admin.get("/admin/organizations/apikey/").content.decode()
    assert ours.prefix in listing
    assert theirs.prefix not in listing
    org_admin.post("/admin/organizations/apikey/", {"action": "revoke",
                                                    "_selected_action": [ours.pk, theirs.pk]})
    assert ApiKey.objects.get(pk=ours.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None


# --- Demo bootstrap -----------------------------------------------------------------------------


def test_demo_admin_key_is_printed_once():
    first, second = StringIO(), StringIO()
    bootstrap_demo(say=lambda line: first.write(line + "\n"))
    bootstrap_demo(say=lambda line: second.write(line + "\n"))
    key_lines = [line.strip() for line in first.getvalue().splitlines() if line.strip().startswith("pki_")]
    assert len(key_lines) == 1
    assert "pki_" not in second.getvalue().replace("create_api_key", "")
    assert "already has an API key" in second.getvalue()
    assert ApiKey.objects.filter(user__username="demo-admin").count() == 1
    client = Client(headers={"Authorization": f"Bearer {key_lines[0]}"})
    assert client.get("/api/v1/organizations/").status_code == 200
    assert ApiKey.objects.get(user__username="demo-admin").user.membership.is_global_admin


def test_membership_admin_validates_and_syncs(make_principal_client, organization):
    from organizations.models import Membership

    target = UserFactory(membership=False)
    admin = make_principal_client("admin")
    url = "/admin/organizations/membership/add/"
    refused = admin.post(url, {"user": target.pk, "role": "manager", "organization": ""})
    assert refused.status_code == 200  # the form again, with the constraint's message
    assert not Membership.objects.filter(user=target).exists()
    accepted = admin.post(url, {"user": target.pk, "role": "manager", "organization": organization.pk})
    assert accepted.status_code == 302
    target.refresh_from_db()
    assert target.is_staff
    assert not target.is_superuser
    assert target.groups.filter(name="PKI managers").exists()
    org_admin = make_principal_client("admin", organization)
    assert org_admin.post(url, {"user": UserFactory(membership=False).pk, "role": "admin",
                                "organization": ""}).status_code == 403
