"""EST (RFC 7030) in-process: encodings, authentication, bindings, refusals that change nothing, and
reenrollment by the client's current certificate through the pluggable authenticator."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from django.test import Client

from audit.models import AuditEvent
from certificates.crypto.serials import serial_to_hex
from certificates.models import Certificate
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.revocation import revoke_certificate
from enrollment.models import EnrollmentToken
from pki_project.actor import Actor
from tests.certificates.csrs import ec_key, make_csr
from tests.enrollment.authenticators import HEADER

pytestmark = pytest.mark.django_db
AUTHENTICATOR = "tests.enrollment.authenticators.by_fingerprint_header"


def est(ca, operation: str) -> str:
    return f"/.well-known/est/{ca.slug}/{operation}"


def body_of(csr_pem: bytes) -> bytes:
    return base64.encodebytes(x509.load_pem_x509_csr(csr_pem).public_bytes(Encoding.DER))


def basic(secret: str, user: str = "device") -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def post(client, url: str, body: bytes, content_type: str = "application/pkcs10", **headers):
    return client.post(url, body, content_type=content_type, **headers)


def certificates_in(response) -> list[x509.Certificate]:
    assert response["Content-Transfer-Encoding"] == "base64"
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))


def test_cacerts_is_the_chain_as_certs_only_pkcs7(client, root_ca, intermediate_ca):
    response = client.get(est(intermediate_ca, "cacerts"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkcs7-mime"
    # a SET OF in DER: the order is the encoding's, not the chain's
    assert {certificate.public_bytes(Encoding.DER) for certificate in certificates_in(response)} == {
        bytes(ca.certificate.der) for ca in (intermediate_ca, root_ca)}
    assert client.get(f"/.well-known/est/{root_ca.slug}/cacerts").status_code == 404  # roots issue nothing
    assert client.get("/.well-known/est/no-such-ca/cacerts").status_code == 404
    assert client.post(est(intermediate_ca, "cacerts")).status_code == 405
    assert client.get(est(intermediate_ca, "csrattrs")).status_code == 204


def test_simpleenroll_with_a_token_and_every_refusal(client, make_token, intermediate_ca, other_hierarchy):
    created = make_token()
    url, body = est(intermediate_ca, "simpleenroll"), body_of(make_csr("d1.fleet.example.com"))
    before = Certificate.objects.count()
    missing = post(client, url, body)
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Basic")
    wrong = post(client, url, body, **basic("et_0123456789abcdef_wrong"))
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Basic")
    assert wrong["Content-Type"].startswith("text/plain")
    assert post(client, url, body, "application/json", **basic(created.secret)).status_code == 415
    assert post(client, url, b"%%% not base64 %%%", **basic(created.secret)).status_code == 400
    assert post(client, url, base64.encodebytes(b"not a CSR"), **basic(created.secret)).status_code == 400
    outside = post(client, url, body_of(make_csr("d1.elsewhere.example.com")), **basic(created.secret))
    assert outside.status_code == 403
    other_ca = post(client, est(other_hierarchy[1], "simpleenroll"), body, **basic(created.secret))
    assert other_ca.status_code == 403
    assert b"another CA" in other_ca.content
    assert client.get(url).status_code == 405
    assert Certificate.objects.count() == before
    assert EnrollmentToken.objects.get(pk=created.token.pk).state == "usable"
    # a Basic header here is the view's credential, not a failed sign-in of the API
    assert not AuditEvent.objects.filter(action="auth.login").exists()
    issued = post(client, url, body, **basic(created.secret))
    assert issued.status_code == 200, issued.content
    assert issued["Content-Type"] == "application/pkcs7-mime; smime-type=certs-only"
    [leaf] = certificates_in(issued)
    assert leaf.subject.rfc4514_string() == "CN=d1.fleet.example.com"
    assert EnrollmentToken.objects.get(pk=created.token.pk).certificate.serial == serial_to_hex(leaf.serial_number)


def test_simplereenroll_by_the_current_client_certificate(client, settings, intermediate_ca, other_hierarchy):
    settings.PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR = AUTHENTICATOR
    operator = Actor.operator("tests")
    current = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr(
        "d2.fleet.example.com")), actor=operator)
    url = est(intermediate_ca, "simplereenroll")
    presented = {HEADER: current.fingerprint_sha256}
    before = Certificate.objects.count()
    # RFC 7030 4.2.2: the names must be those of the certificate being renewed
    differ = post(client, url, body_of(make_csr("other.fleet.example.com")), **presented)
    assert differ.status_code == 400
    assert b"4.2.2" in differ.content
    foreign = issue_certificate(other_hierarchy[1], IssuanceRequest(profile="server", csr=make_csr(
        "d2.fleet.example.com")), actor=operator)
    assert post(client, url, body_of(make_csr("d2.fleet.example.com")),
                **{HEADER: foreign.fingerprint_sha256}).status_code == 403
    assert Certificate.objects.count() == before + 1  # only the foreign certificate made above
    renewed = post(client, url, body_of(make_csr("d2.fleet.example.com", key=ec_key())), **presented)
    assert renewed.status_code == 200, renewed.content
    [leaf] = certificates_in(renewed)
    row = Certificate.objects.get(serial=serial_to_hex(leaf.serial_number))
    assert row.predecessor_id == current.pk
    event = AuditEvent.objects.get(action="certificate.renew", target_serial=row.serial)
    assert event.actor_label == f"est:{current.serial}"
    # renewed once: the same certificate cannot renew again; a revoked one not at all
    assert post(client, url, body_of(make_csr("d2.fleet.example.com")), **presented).status_code == 409
    revoke_certificate(row, reason="keyCompromise", actor=operator)
    revoked = post(client, url, body_of(make_csr("d2.fleet.example.com")), **{HEADER: row.fingerprint_sha256})
    assert revoked.status_code == 403
    # without a vouched-for certificate and without a token: the Basic challenge
    assert post(client, url, body_of(make_csr("d2.fleet.example.com"))).status_code == 401


def test_simplereenroll_takes_a_token_without_an_authenticator(client, make_token, intermediate_ca):
    created = make_token()
    response = post(client, est(intermediate_ca, "simplereenroll"), body_of(make_csr("d3.fleet.example.com")),
                    **basic(created.secret, user=created.token.token_id))
    assert response.status_code == 200, response.content
    assert EnrollmentToken.objects.get(pk=created.token.pk).state == "used"


@pytest.mark.parametrize("caller", ["anonymous", "user", "manager", "admin", "other_admin"])
def test_the_public_routes_are_the_same_for_every_caller(make_principal_client, organization, other_organization,
                                                         intermediate_ca, make_token, caller):
    """The token is the credential: a signed-in role neither helps nor hinders."""
    client = Client() if caller == "anonymous" else make_principal_client(
        caller.removeprefix("other_"), other_organization if caller.startswith("other") else organization)
    assert client.get(est(intermediate_ca, "cacerts")).status_code == 200
    assert client.get(est(intermediate_ca, "csrattrs")).status_code == 204
    no_token = client.post("/enroll/", {"csr": make_csr("x.fleet.example.com").decode()},
                           content_type="application/json")
    assert no_token.status_code == 400
    created = make_token()
    enrolled = client.post("/enroll/", {"token": created.secret, "csr": make_csr("x.fleet.example.com").decode()},
                           content_type="application/json")
    assert enrolled.status_code == 201
    token = EnrollmentToken.objects.get(pk=created.token.pk)
    assert token.certificate.organization_id == organization.pk
