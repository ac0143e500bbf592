"""Who may bind which certificate to whom: the API (each role, another organization), the command, the
settings checked at start-up."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from certificates.services.revocation import revoke_certificate
from organizations.models import ClientCertificateBinding
from pki_project.config import ConfigError, mtls_proxy_config
from tests.helpers import VALID_SECRETS, clean_environment, run_manage

pytestmark = pytest.mark.django_db
URL = "/api/v1/client-certificate-bindings/"


def bind_events() -> int:
    return AuditEvent.objects.filter(action="client_certificate.bind").count()


def test_an_admin_binds_and_unbinds_in_their_organization(world, make_principal_client):
    admin = make_principal_client("admin", world.organization)
    certificate, member = world.issue(), world.member()
    response = admin.post(URL, {"user": member.username, "certificate": certificate.pk},
                          content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"] == member.username
    assert body["fingerprint_sha256"] == certificate.fingerprint_sha256
    assert body["organization"] == world.organization.slug
    event = AuditEvent.objects.get(action="client_certificate.bind")
    assert event.actor_username == admin.user.username
    assert event.details["serial"] == certificate.serial
    assert admin.get(URL).json()["count"] == 1
    assert admin.delete(f"{URL}{body['id']}/").status_code == 204
    assert not ClientCertificateBinding.objects.exists()
    assert AuditEvent.objects.filter(action="client_certificate.unbind", target_id=str(body["id"])).count() == 1


@pytest.mark.parametrize(("change", "field"), [
    ("another organization's member", "user"),
    ("unknown user", "user"),
    ("another organization's certificate", "certificate"),
    ("revoked certificate", "certificate"),
    ("server certificate", "certificate"),
    ("bound already", "certificate"),
    ("missing certificate", "certificate"),
    ("certificate as text", "certificate"),
])
def test_bad_bindings_are_refused_and_change_nothing(world, make_principal_client, change, field):
    admin = make_principal_client("admin", world.organization)
    certificate, member = world.issue(), world.member()
    body = {"user": member.username, "certificate": certificate.pk}
    if change == "another organization's member":
        body["user"] = world.member(organization=world.other_organization).username
    elif change == "unknown user":
        body["user"] = "nobody@nowhere"
    elif change == "another organization's certificate":
        body["certificate"] = world.issue(ca=world.other_issuing).pk
    elif change == "revoked certificate":
        revoke_certificate(certificate, reason="superseded", actor=world.operator)
    elif change == "server certificate":
        body["certificate"] = world.issue(profile="server", name="web").pk
    elif change == "bound already":
        world.bound(user=world.member())  # another certificate, then this one twice
        admin.post(URL, body, content_type="application/json")
    elif change == "missing certificate":
        del body["certificate"]
    else:
        body["certificate"] = "one"
    bindings, events = ClientCertificateBinding.objects.count(), bind_events()
    response = admin.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"].get("fields", {}), response.json()
    assert (ClientCertificateBinding.objects.count(), bind_events()) == (bindings, events)


def test_roles_and_organizations(world, make_principal_client):
    certificate, member = world.bound()
    own_binding = certificate.client_binding
    _other_certificate, _other_user = world.bound(user=world.member())
    manager = make_principal_client("manager", world.organization)
    user = make_principal_client("user", world.organization)
    other_admin = make_principal_client("admin", world.other_organization)
    global_admin = make_principal_client("admin")
    fresh = world.issue()
    body = {"user": member.username, "certificate": fresh.pk}
    from django.test import Client

    anonymous = Client()
    assert anonymous.get(URL).status_code == 401
    assert anonymous.post(URL, body, content_type="application/json").status_code == 401
    assert anonymous.delete(f"{URL}{own_binding.pk}/").status_code == 401
    for caller in (manager, user):
        assert caller.post(URL, body, content_type="application/json").status_code == 403
        assert caller.delete(f"{URL}{own_binding.pk}/").status_code == 403
    assert manager.get(URL).json()["count"] == 2
    assert user.get(URL).json()["count"] == 0  # users see their own bindings only
    member_client = make_principal_client("user", world.organization)
    world.bound(user=member_client.user)
    assert [row["user"] for row in member_client.get(URL).json()["results"]] == [member_client.user.username]
    # Another organization's admin: the bindings and certificates do not exist for them.
    assert other_admin.get(URL).json()["count"] == 0
    assert other_admin.get(f"{URL}{own_binding.pk}/").status_code == 404
    assert other_admin.delete(f"{URL}{own_binding.pk}/").status_code == 404
    response = other_admin.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "certificate" in response.json()["error"]["fields"]
    assert ClientCertificateBinding.objects.filter(pk=own_binding.pk).exists()
    # A global admin binds in any organization, but never a global admin (outside every organization).
    assert global_admin.post(URL, body, content_type="application/json").status_code == 201
    refused = global_admin.post(URL, {"user": global_admin.user.username, "certificate": world.issue().pk},
                                content_type="application/json")
    assert refused.status_code == 400


def test_the_command_binds_and_removes(world):
    certificate, member = world.issue(), world.member()
    out = StringIO()
    call_command("bind_client_certificate", "--user", member.username, "--certificate", certificate.serial,
                 "--json", stdout=out)
    created = json.loads(out.getvalue())
    assert created["user"] == member.username
    assert created["certificate"] == certificate.pk
    event = AuditEvent.objects.get(action="client_certificate.bind")
    assert event.actor_label == "cli:bind_client_certificate"
    with pytest.raises(CommandError, match="bound already"):
        call_command("bind_client_certificate", "--user", member.username, "--certificate", str(certificate.pk))
    with pytest.raises(CommandError, match="not a member"):
        call_command("bind_client_certificate", "--user", world.member(organization=world.other_organization).username,
                     "--certificate", str(world.issue().pk))
    with pytest.raises(CommandError, match="No user"):
        call_command("bind_client_certificate", "--user", "ghost", "--certificate", str(world.issue().pk))
    with pytest.raises(CommandError, match="No certificate"):
        call_command("bind_client_certificate", "--user", member.username, "--certificate", "999999")
    assert ClientCertificateBinding.objects.count() == 1
    out = StringIO()
    call_command("bind_client_certificate", "--certificate", str(certificate.pk), "--remove", "--json", stdout=out)
    assert json.loads(out.getvalue())["removed"] is True
    assert not ClientCertificateBinding.objects.exists()
    with pytest.raises(CommandError, match="not bound"):
        call_command("bind_client_certificate", "--certificate", str(certificate.pk), "--remove")


def test_proxy_settings():
    assert not mtls_proxy_config({}).enabled
    config = mtls_proxy_config({"PKI_MTLS_PROXY_SECRET": "s" * 32,
                                "PKI_MTLS_TRUSTED_PROXIES": " 10.0.0.0/24, fd00::1 "})
    assert config.enabled
    assert [str(network) for network in config.trusted_proxies] == ["10.0.0.0/24", "fd00::1/128"]
    assert [str(n) for n in mtls_proxy_config({}).trusted_proxies] == ["127.0.0.1/32", "::1/128"]
    for environ, named in (({"PKI_MTLS_PROXY_SECRET": "short"}, "PKI_MTLS_PROXY_SECRET"),
                           ({"PKI_MTLS_PROXY_SECRET": "j" * 40, "PKI_JWT_SECRET": "j" * 40}, "PKI_MTLS_PROXY_SECRET"),
                           ({"PKI_MTLS_TRUSTED_PROXIES": "127.0.0.1,proxy.example"}, "PKI_MTLS_TRUSTED_PROXIES")):
        with pytest.raises(ConfigError, match=named):
            mtls_proxy_config(environ)


def test_a_bad_proxy_setting_stops_start_up_with_one_line(tmp_path):
    env = clean_environment(PKI_MTLS_PROXY_SECRET=VALID_SECRETS["PKI_JWT_SECRET"],
                            PKI_ENV_FILE=str(tmp_path / "none.env"), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    result = run_manage("check", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration error: PKI_MTLS_PROXY_SECRET must differ from PKI_JWT_SECRET and PKI_ENCRYPTION_KEY."]


ADMIN_ADD = "/admin/organizations/clientcertificatebinding/add/"


def test_the_admin_binds_and_unbinds_through_the_service(world, make_principal_client):
    admin = make_principal_client("admin", world.organization)
    certificate, member = world.issue(), world.member()
    foreign = world.issue(ca=world.other_issuing)
    refused = admin.post(ADMIN_ADD, {"user": member.pk, "certificate": foreign.pk})
    assert refused.status_code == 200  # the form again: another organization's certificate is not a choice
    assert not ClientCertificateBinding.objects.exists()
    accepted = admin.post(ADMIN_ADD, {"user": member.pk, "certificate": certificate.pk})
    assert accepted.status_code == 302, accepted.content
    binding = ClientCertificateBinding.objects.get()
    assert (binding.user, binding.certificate) == (member, certificate)
    assert AuditEvent.objects.get(action="client_certificate.bind").actor_username == admin.user.username
    other_admin = make_principal_client("admin", world.other_organization)
    change = f"/admin/organizations/clientcertificatebinding/{binding.pk}/"
    for page in ("change/", "delete/"):  # not theirs: the admin's "does not exist", back to the list
        response = other_admin.get(f"{change}{page}")
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
    manager = make_principal_client("manager", world.organization)
    assert manager.get(ADMIN_ADD).status_code == 403
    assert manager.post(f"{change}delete/", {"post": "yes"}).status_code == 403
    assert admin.post(f"{change}delete/", {"post": "yes"}).status_code == 302
    assert not ClientCertificateBinding.objects.exists()
    assert AuditEvent.objects.filter(action="client_certificate.unbind").count() == 1
