"""Client-certificate sign-in in-process: what the proxy headers must be, which certificates sign in,
how long a session lasts, and the check EST re-enrollment reuses (`verified_client_certificate`)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.test import Client, RequestFactory
from django.utils import timezone

from audit.models import AuditEvent
from certificates.models import Certificate
from certificates.services.revocation import revoke_certificate
from organizations.client_certificates import unbind_client_certificate, verified_client_certificate
from organizations.models import ClientCertificateBinding, SessionToken
from organizations.services import change_user, set_membership
from tests.mtls.conftest import PROXY, SECRET, mtls_post, proxy_headers

pytestmark = pytest.mark.django_db


def refusals() -> list[str]:
    return list(AuditEvent.objects.filter(action="auth.login", outcome="failure").order_by("seq")
                .values_list("details__reason", flat=True))


def assert_refused(response, reason: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json() == {"error": {"code": "invalid_credentials", "message": "Invalid credentials."}}
    assert refusals()[-1] == reason
    assert not SessionToken.objects.exists()  # a refusal opens nothing


def foreign_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "robot")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))


def test_a_bound_certificate_signs_in_and_the_session_works(world):
    certificate, user = world.bound()
    client = Client()
    response = mtls_post(certificate, client=client)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["role"] == "user"
    assert body["organization"] == world.organization.slug
    assert response.cookies["pki_session"]["httponly"]
    session = SessionToken.objects.get()
    assert session.client_certificate_id == certificate.pk
    assert session.api_key_id is None
    event = AuditEvent.objects.get(action="auth.login", outcome="success")
    assert event.actor_username == user.username
    assert event.actor_label == f"cert:{certificate.serial}"
    assert event.details["fingerprint_sha256"] == certificate.fingerprint_sha256
    assert Client().get("/api/v1/certificates/", headers={"Authorization": f"Bearer {body['token']}"}
                        ).status_code == 200
    assert client.get("/api/v1/certificates/").status_code == 200  # the cookie


@pytest.mark.parametrize(("case", "reason"), [
    ("untrusted address", "proxy headers from an untrusted address"),
    ("no secret", "proxy secret missing"),
    ("wrong secret", "wrong proxy secret"),
    ("secret of another length", "wrong proxy secret"),
    ("not verified by the proxy", "proxy did not verify the certificate (FAILED:certificate has expired)"),
    ("garbage instead of a certificate", "certificate header is not a PEM certificate"),
])
def test_the_proxy_headers_are_believed_only_from_the_proxy_with_its_secret(world, case, reason):
    certificate, _user = world.bound()
    response = {
        "untrusted address": lambda: mtls_post(certificate, source="127.0.0.1"),
        "no secret": lambda: mtls_post(certificate, secret=None),
        "wrong secret": lambda: mtls_post(certificate, secret=SECRET[:-1] + "?"),
        "secret of another length": lambda: mtls_post(certificate, secret="short"),
        "not verified by the proxy": lambda: mtls_post(certificate, verify="FAILED:certificate has expired"),
        "garbage instead of a certificate": lambda: Client().post(
            "/auth/mtls", content_type="application/json", REMOTE_ADDR=PROXY,
            headers={**proxy_headers(None), "X-PKI-Client-Cert": "-----BEGIN%20CERTIFICATE-----%0Azz"}),
    }[case]()
    assert_refused(response, reason)
    assert refusals()[-1] == reason
    assert AuditEvent.objects.filter(
        action="auth.login", outcome="failure", details__via="client_certificate").count() == 1


def test_headers_are_ignored_while_client_certificate_login_is_off(world, settings):
    from pki_project.config import MtlsProxyConfig

    settings.PKI_MTLS = MtlsProxyConfig()
    certificate, _user = world.bound()
    assert_refused(mtls_post(certificate), "client-certificate login is not configured")


def test_nothing_presented_is_a_400_and_not_recorded(world):
    for response in (Client().post("/auth/mtls", content_type="application/json"),
                     mtls_post(None, verify="NONE")):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "no_client_certificate"
    assert refusals() == []
    assert not SessionToken.objects.exists()


def test_certificates_that_may_not_sign_in(world):
    unbound = world.issue()
    assert_refused(mtls_post(unbound), "certificate not bound to a member")
    assert_refused(mtls_post(foreign_certificate()), "certificate not issued by this PKI")
    assert_refused(mtls_post(world.issuing.certificate), "not an end-entity certificate")
    server = world.issue(profile="server", name="web")
    ClientCertificateBinding.objects.create(user=world.member(), certificate=server)  # bypassing the service's check
    assert_refused(mtls_post(server), "certificate not for TLS client authentication")

    revoked, _user = world.bound()
    revoke_certificate(revoked, reason="keyCompromise", actor=world.operator)
    assert_refused(mtls_post(revoked), "certificate revoked")

    expired, _user = world.bound()
    past = timezone.now() - dt.timedelta(days=2)
    Certificate.objects.filter(pk=expired.pk).update(not_before=past - dt.timedelta(days=1), not_after=past)
    assert_refused(mtls_post(expired), "certificate expired or not yet valid")


def test_a_revoked_issuing_ca_refuses_what_it_issued(world):
    """Revoking a CA revokes what it issued too (revoke_children); the CA's own state is checked besides."""
    certificate, _user = world.bound()
    Certificate.objects.filter(pk=world.issuing.certificate_id).update(revoked_at=timezone.now(),
                                                                       revocation_reason="cACompromise")
    assert_refused(mtls_post(certificate), "issuing CA revoked or expired")


def test_the_member_must_belong_to_the_certificates_organization_and_be_active(world):
    moved, moved_user = world.bound()
    set_membership(moved_user, "user", world.other_organization, actor=world.operator)
    assert_refused(mtls_post(moved), "certificate of another organization")

    inactive, inactive_user = world.bound()
    change_user(inactive_user, actor=world.operator, is_active=False)
    assert_refused(mtls_post(inactive), "user inactive")


def test_a_session_ends_when_its_certificate_stops_being_good(world):
    for end in ("revoke", "unbind", "move"):
        certificate, user = world.bound()
        token = mtls_post(certificate).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert Client().get("/api/v1/certificates/", headers=bearer).status_code == 200
        if end == "revoke":
            revoke_certificate(certificate, reason="superseded", actor=world.operator)
        elif end == "unbind":
            unbind_client_certificate(certificate.client_binding, actor=world.operator)
        else:
            set_membership(user, "user", world.other_organization, actor=world.operator)
        assert Client().get("/api/v1/certificates/", headers=bearer).status_code == 401, end
        SessionToken.objects.all().delete()


def test_refusals_are_limited_like_wrong_keys(world, settings):
    settings.PKI_LOGIN_RATE_PER_IP = 2
    unbound = world.issue()
    assert [mtls_post(unbound).status_code for _ in range(3)] == [401, 401, 429]
    good, _user = world.bound()
    assert mtls_post(good).status_code == 200  # a good certificate is never held back by the limit


def test_verified_client_certificate_for_other_protocols(world):
    """EST re-enrollment authenticates the device by its certificate alone: no member, no session."""
    factory = RequestFactory()
    unbound = world.issue()
    request = factory.post("/.well-known/est/x/simplereenroll", REMOTE_ADDR=PROXY, headers=proxy_headers(unbound))
    assert verified_client_certificate(request) == unbound
    assert verified_client_certificate(factory.post("/", REMOTE_ADDR=PROXY)) is None

    forged = factory.post("/", REMOTE_ADDR="127.0.0.1", headers=proxy_headers(unbound))
    assert verified_client_certificate(forged, door="est") is None
    assert verified_client_certificate(forged, door="est") is None  # checked once per request, recorded once
    assert list(AuditEvent.objects.filter(action="auth.login", outcome="failure").values_list(
        "details__via", "details__reason")) == [("est", "proxy headers from an untrusted address")]
    assert not SessionToken.objects.exists()
