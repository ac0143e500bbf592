"""Enrollment tokens for staff: the API (every role, another organization), the command and the admin.

The token is shown once and only its hash is stored; refusals change nothing; creation and
revocation are audited.
"""

from __future__ import annotations

import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditEvent
from certificates.models import CertificateProfile
from enrollment.models import EnrollmentToken
from tests.certificates.csrs import make_csr
from tests.enrollment.conftest import FLEET

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/enrollment-tokens/"


def create_body(ca, **extra) -> dict:
    return {"ca": ca.slug, "profile": "server", "san_patterns": [FLEET], "expires_in": 600, **extra}


def post(client: Client, url: str, body: dict | None = None):
    return client.post(url, body or {}, content_type="application/json")


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_staff_create_a_token_shown_once(make_principal_client, organization, intermediate_ca, role):
    client = make_principal_client(role, organization)
    response = post(client, TOKENS, create_body(intermediate_ca, label="line 4"))
    assert response.status_code == 201, response.content
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    token = EnrollmentToken.objects.get(pk=body["id"])
    assert body["token"].startswith(f"et_{token.token_id}_")
    assert token.secret_sha256 == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in json.dumps(list(EnrollmentToken.objects.values()), default=str)
    assert (body["organization"], body["ca"], body["profile"], body["state"]) == (
        organization.slug, intermediate_ca.slug, "server", "usable")
    event = AuditEvent.objects.get(action="enrollment_token.create")
    assert event.target_id == token.token_id
    assert body["token"] not in json.dumps(event.details)
    # shown once: neither the list nor the detail has it
    listed = client.get(TOKENS).json()["results"]
    assert [item["token_id"] for item in listed] == [token.token_id]
    assert "token" not in listed[0]
    assert "token" not in client.get(f"{TOKENS}{token.pk}/").json()
    # and it works
    enrolled = Client().post("/enroll/", {"token": body["token"], "csr": make_csr("a.fleet.example.com").decode()},
                             content_type="application/json")
    assert enrolled.status_code == 201
    assert client.get(f"{TOKENS}{token.pk}/").json()["state"] == "used"


def test_every_caller_on_every_token_route(make_principal_client, organization, other_organization,
                                           intermediate_ca, make_token):
    callers = {"anonymous": Client(), "user": make_principal_client("user", organization),
               "manager": make_principal_client("manager", organization),
               "admin": make_principal_client("admin", organization),
               "other_manager": make_principal_client("manager", other_organization),
               "other_admin": make_principal_client("admin", other_organization)}
    expected_create = {"anonymous": 401, "user": 403, "manager": 201, "admin": 201, "other_manager": 404,
                       "other_admin": 404}
    expected_read = {"anonymous": 401, "user": 403, "manager": 200, "admin": 200, "other_manager": 404,
                     "other_admin": 404}
    for name, client in callers.items():
        body = create_body(intermediate_ca, organization=organization.slug)
        assert post(client, TOKENS, body).status_code == expected_create[name], name
        token = make_token().token
        assert client.get(f"{TOKENS}{token.pk}/").status_code == expected_read[name], name
        listed = client.get(TOKENS)
        assert listed.status_code == (200 if name.startswith("other") else expected_read[name]), name
        if name.startswith("other"):
            assert listed.json()["results"] == []
        revoked = post(client, f"{TOKENS}{token.pk}/revoke/")
        assert revoked.status_code == expected_read[name], name
        token.refresh_from_db()
        assert (token.revoked_at is not None) == (expected_read[name] == 200), name
    assert AuditEvent.objects.filter(action="enrollment_token.revoke").count() == 2


def test_bad_token_requests_change_nothing(make_principal_client, organization, intermediate_ca, root_ca,
                                           other_hierarchy, make_token):
    client = make_principal_client("manager", organization)
    before = EnrollmentToken.objects.count()
    cases = [
        (create_body(intermediate_ca, san_patterns=[]), 400),
        (create_body(intermediate_ca, san_patterns=["DNS:*"]), 400),
        (create_body(intermediate_ca, san_patterns=["DNS:exa mple.com"]), 400),
        (create_body(intermediate_ca, san_patterns=["IP:10.0.0.0/33"]), 400),
        (create_body(intermediate_ca, san_patterns="DNS:x.example.com"), 400),
        (create_body(intermediate_ca, san_patterns=[7]), 400),
        (create_body(intermediate_ca, profile="no-such-profile"), 400),
        (create_body(intermediate_ca, expires_in=10), 400),
        (create_body(intermediate_ca, expires_in=10**9), 400),
        (create_body(intermediate_ca, expires_in="1h"), 400),
        (create_body(root_ca), 400),
        (create_body(other_hierarchy[1]), 404),
        (create_body(intermediate_ca, organization="no-such-org"), 404),
        ({"profile": "server", "san_patterns": [FLEET]}, 400),
    ]
    for body, status in cases:
        response = post(client, TOKENS, body)
        assert response.status_code == status, (body, response.content)
        assert response.json()["error"]["code"]
    assert EnrollmentToken.objects.count() == before
    assert not AuditEvent.objects.filter(action="enrollment_token.create").exists()
    used = make_token()
    Client().post("/enroll/", {"token": used.secret, "csr": make_csr("a.fleet.example.com").decode()},
                  content_type="application/json")
    response = post(client, f"{TOKENS}{used.token.pk}/revoke/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "already_used"
    assert post(client, f"{TOKENS}999999/revoke/").status_code == 404


def test_command_creates_a_token_and_prints_it_once(organization, intermediate_ca):
    out = StringIO()
    call_command("create_enrollment_token", "--organization", organization.slug, "--ca", intermediate_ca.slug,
                 "--profile", "server", "--san-pattern", FLEET, "--san-pattern", "IP:10.20.0.0/16",
                 "--expires-in", "2h", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    token = EnrollmentToken.objects.get(pk=payload["id"])
    assert payload["token"].startswith(f"et_{token.token_id}_")
    assert token.san_patterns == [FLEET, "IP:10.20.0.0/16"]
    assert 7100 < (token.expires_at - token.created_at).total_seconds() <= 7200
    assert AuditEvent.objects.get(action="enrollment_token.create").actor_label == "cli:create_enrollment_token"
    text = StringIO()
    call_command("create_enrollment_token", "--organization", organization.slug, "--ca", intermediate_ca.slug,
                 "--profile", "client", "--san-pattern", "CN:robot-*", stdout=text)
    assert "shown only now" in text.getvalue()
    for arguments, message in [
        (["--organization", "nope"], "No organization"),
        (["--ca", "nope"], "No CA"),
        (["--ca", intermediate_ca.parent.slug], "intermediate"),
        (["--expires-in", "soon"], "not a duration"),
        (["--san-pattern", "IP:nonsense"], "not valid"),
        (["--profile", "nope"], "No profile"),
    ]:
        options = {"--organization": organization.slug, "--ca": intermediate_ca.slug, "--profile": "server",
                   "--san-pattern": FLEET}
        for flag, value in zip(arguments[::2], arguments[1::2], strict=True):
            options[flag] = value
        argv = [item for pair in options.items() for item in pair]
        with pytest.raises(CommandError, match=message):
            call_command("create_enrollment_token", *argv, stdout=StringIO())
    assert EnrollmentToken.objects.count() == 2


def test_admin_creates_shows_once_revokes_and_scopes(make_principal_client, organization, intermediate_ca,
                                                     other_hierarchy):
    from enrollment.services.tokens import create_token
    from pki_project.actor import Actor

    server_profile = CertificateProfile.objects.get(name="server", organization__isnull=True)
    foreign = create_token(other_hierarchy[1].organization, ca=other_hierarchy[1], profile="server",
                           san_patterns=[FLEET], actor=Actor.operator("tests")).token
    for role in ("admin", "manager"):
        staff = make_principal_client(role, organization, via="cookie")
        page = staff.get("/admin/enrollment/enrollmenttoken/add/")
        assert page.status_code == 200
        assert other_hierarchy[1].slug not in page.content.decode()
        created = staff.post("/admin/enrollment/enrollmenttoken/add/", {
            "organization": organization.pk, "ca": intermediate_ca.pk, "profile": server_profile.pk,
            "san_patterns": f"{FLEET}\nIP:10.0.0.0/8", "expires_in": 3600, "label": role})
        assert created.status_code == 200, created.content[:500]
        token = EnrollmentToken.objects.get(label=role)
        html = created.content.decode()
        assert f"et_{token.token_id}_" in html
        assert "no-store" in created["Cache-Control"]
        listing = staff.get("/admin/enrollment/enrollmenttoken/").content.decode()
        assert token.token_id in listing
        assert foreign.token_id not in listing
        assert f"et_{token.token_id}_" not in listing
        staff.post("/admin/enrollment/enrollmenttoken/", {"action": "revoke_selected", "_selected_action": [token.pk]})
        token.refresh_from_db()
        assert token.revoked_at is not None
        assert staff.get(f"/admin/enrollment/enrollmenttoken/{foreign.pk}/change/").status_code in (302, 404)
    user = make_principal_client("user", organization, via="cookie")
    assert user.get("/admin/enrollment/enrollmenttoken/add/").status_code == 403
    before = EnrollmentToken.objects.count()
    bad = make_principal_client("admin", organization, via="cookie").post(
        "/admin/enrollment/enrollmenttoken/add/", {"organization": organization.pk, "ca": intermediate_ca.pk,
                                                   "profile": server_profile.pk, "san_patterns": "DNS:*",
                                                   "expires_in": 3600})
    assert bad.status_code == 200
    assert "not valid" in bad.content.decode()
    assert EnrollmentToken.objects.count() == before
