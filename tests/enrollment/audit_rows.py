"""The enrollment rows of tests/audit/test_coverage.py: each enrollment action, done through its interface,
leaves one event."""

from __future__ import annotations

from django.test import Client

from certificates.services.authorities import create_intermediate_ca, create_root_ca
from enrollment.models import EnrollmentToken
from enrollment.services.tokens import create_token
from pki_project.actor import Actor
from tests.certificates.csrs import make_csr

ROOT_PASSWORD = "correct horse battery staple"
FLEET = "DNS:*.fleet.example.com"


def _expected(**kwargs):
    from tests.audit.test_coverage import Expected

    return Expected(**kwargs)


def _issuing_ca(organization):
    operator = Actor.operator("tests")
    root = create_root_ca(organization=organization, common_name="Enrollment Coverage Root",
                          root_password=ROOT_PASSWORD, key_type="ec-p256", days=3650, path_length=1, actor=operator)
    return create_intermediate_ca(parent=root, common_name="Enrollment Coverage Issuing", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=1825, path_length=0, actor=operator)


def _token(organization):
    return create_token(organization, ca=_issuing_ca(organization), profile="server", san_patterns=[FLEET],
                        actor=Actor.operator("tests"))


def token_create(world):
    client = world.make_client("manager")
    ca = _issuing_ca(client.organization)
    world.mark()
    response = client.post("/api/v1/enrollment-tokens/", {"ca": ca.slug, "profile": "server", "san_patterns": [FLEET]},
                           content_type="application/json")
    assert response.status_code == 201
    return _expected(actor_username=client.user.username, actor_api_key_id=client.api_key.pk,
                     organization_id=client.organization.pk, target_type="enrollment_token",
                     target_id=response.json()["token_id"], details={"ca": ca.slug, "profile": "server"})


def token_revoke(world):
    client = world.make_client("manager")
    created = _token(client.organization)
    world.mark()
    response = client.post(f"/api/v1/enrollment-tokens/{created.token.pk}/revoke/")
    assert response.status_code == 200
    return _expected(actor_username=client.user.username, organization_id=client.organization.pk,
                     target_type="enrollment_token", target_id=created.token.token_id)


def token_use(world):
    client = world.make_client("manager")
    created = _token(client.organization)
    world.mark()
    response = Client().post("/enroll/", {"token": created.secret, "csr": make_csr("a.fleet.example.com").decode()},
                             content_type="application/json")
    assert response.status_code == 201
    return _expected(actor_username="", actor_label=f"enroll:{created.token.token_id}",
                     organization_id=client.organization.pk, target_type="enrollment_token",
                     target_id=created.token.token_id, target_serial=response.json()["serial"])


def refuse(world):
    client = world.make_client("manager")
    created = _token(client.organization)
    world.mark()
    response = Client().post("/enroll/", {"token": created.secret, "csr": make_csr("evil.example.com").decode()},
                             content_type="application/json")
    assert response.status_code == 403
    assert EnrollmentToken.objects.get(pk=created.token.pk).state == "usable"
    return _expected(outcome="failure", actor_label=f"enroll:{created.token.token_id}",
                     organization_id=client.organization.pk, target_type="enrollment_token",
                     target_id=created.token.token_id, details={"reason": "name_not_allowed", "channel": "enroll"})
