"""POST /enroll/: a CSR and a one-time token give one certificate within what the token allows; every
refusal changes nothing (no certificate, the token still usable) and is a failure event."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from django.utils import timezone

from audit.models import AuditEvent
from certificates.models import Certificate
from enrollment.models import EnrollmentToken
from enrollment.services.tokens import revoke_token
from pki_project.actor import Actor
from tests.certificates.csrs import make_csr, tampered_csr
from tests.judges import openssl_verify

pytestmark = pytest.mark.django_db


def enroll(client, token: str, csr: bytes | str, **extra):
    body = {"token": token, "csr": csr.decode() if isinstance(csr, bytes) else csr, **extra}
    return client.post("/enroll/", body, content_type="application/json")


def pem_of(der: bytes) -> str:
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der).decode() + \
        "-----END CERTIFICATE REQUEST-----\n"


def unchanged(token: EnrollmentToken, certificates_before: int) -> None:
    token.refresh_from_db()
    assert token.used_at is None
    assert token.certificate_id is None
    assert Certificate.objects.count() == certificates_before


def test_a_token_gives_one_certificate_that_verifies(client, make_token, root_ca, intermediate_ca, tmp_path: Path):
    created = make_token(label="robot 1")
    response = enroll(client, created.secret, make_csr("r1.fleet.example.com"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert "no-store" in response["Cache-Control"]
    chain = x509.load_pem_x509_certificates(body["chain_pem"].encode())
    leaf = chain[0]
    assert leaf.subject.rfc4514_string() == "CN=r1.fleet.example.com"
    assert body["ca"] == intermediate_ca.slug
    assert body["profile"] == "server"
    assert openssl_verify(tmp_path, x509.load_der_x509_certificate(bytes(root_ca.certificate.der)),
                          leaf, chain[1:]).returncode == 0
    token = EnrollmentToken.objects.get(pk=created.token.pk)
    assert token.used_at is not None
    assert token.certificate_id == body["id"]
    assert token.state == "used"
    use = AuditEvent.objects.get(action="enrollment_token.use")
    assert use.actor_label == f"enroll:{token.token_id}"
    assert use.target_serial == body["serial"]
    issue = AuditEvent.objects.get(action="certificate.issue", target_serial=body["serial"])
    assert issue.actor_label == f"enroll:{token.token_id}"
    assert created.secret not in str(list(AuditEvent.objects.values_list("details", flat=True)))
    # used: the second try is refused and issues nothing
    again = enroll(client, created.secret, make_csr("r2.fleet.example.com"))
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_token"
    assert Certificate.objects.filter(enrollment_token__isnull=False).count() == 1
    refusal = AuditEvent.objects.get(action="enrollment.refuse")
    assert refusal.outcome == "failure"
    assert refusal.details["reason"] == "token used"


def _refused(client, created, csr, status: int, code: str, reason: str, **extra) -> None:
    before = Certificate.objects.count()
    response = enroll(client, created.secret, csr, **extra)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    unchanged(created.token, before)
    event = AuditEvent.objects.filter(action="enrollment.refuse").latest("id")
    assert event.outcome == "failure"
    assert event.details["reason"] == reason
    assert event.target_id == created.token.token_id


def test_a_name_outside_the_patterns_is_refused(client, make_token):
    created = make_token(san_patterns=["DNS:*.fleet.example.com", "IP:10.20.0.0/16"])
    _refused(client, created, make_csr("evil.example.com"), 403, "name_not_allowed", "name_not_allowed")
    _refused(client, created, make_csr("a.b.fleet.example.com"), 403, "name_not_allowed", "name_not_allowed")
    _refused(client, created, make_csr("r1.fleet.example.com", sans=["DNS:r1.fleet.example.com", "IP:10.30.0.1"]),
             403, "name_not_allowed", "name_not_allowed")
    # the same token still works within its patterns
    ok = enroll(client, created.secret,
                make_csr("r1.fleet.example.com", sans=["DNS:r1.fleet.example.com", "IP:10.20.3.4"]))
    assert ok.status_code == 201, ok.content


def test_a_token_for_another_ca_or_organization_is_refused(client, make_token, other_hierarchy, intermediate_ca):
    created = make_token()
    _refused(client, created, make_csr("r1.fleet.example.com"), 403, "token_not_for_ca", "token_not_for_ca",
             ca=other_hierarchy[1].slug)
    _refused(client, created, make_csr("r1.fleet.example.com"), 403, "token_not_for_organization",
             "token_not_for_organization", organization=other_hierarchy[1].organization.slug)
    ok = enroll(client, created.secret, make_csr("r1.fleet.example.com"), ca=intermediate_ca.slug,
                organization=intermediate_ca.organization.slug)
    assert ok.status_code == 201, ok.content


def test_expired_revoked_and_wrong_tokens_are_refused_alike(client, make_token):
    expired = make_token()
    EnrollmentToken.objects.filter(pk=expired.token.pk).update(created_at=timezone.now() - timedelta(hours=2),
                                                               expires_at=timezone.now() - timedelta(seconds=1))
    _refused(client, expired, make_csr("r1.fleet.example.com"), 401, "invalid_token", "token expired")
    revoked = make_token()
    revoke_token(revoked.token, actor=Actor.operator("tests"))
    _refused(client, revoked, make_csr("r1.fleet.example.com"), 401, "invalid_token", "token revoked")
    wrong = make_token()
    forged = type(wrong)(wrong.token, wrong.secret[:-4] + ("AAAA" if not wrong.secret.endswith("AAAA") else "BBBB"))
    _refused(client, forged, make_csr("r1.fleet.example.com"), 401, "invalid_token", "wrong secret")
    messages = {enroll(client, text, make_csr("r1.fleet.example.com")).json()["error"]["message"]
                for text in (expired.secret, revoked.secret, forged.secret, "et_0000000000000000_nope", "junk")}
    assert messages == {"The enrollment token was not accepted."}
    assert wrong.token.state == "usable"


def test_bad_inputs_change_nothing(client, make_token):
    created = make_token()
    before = Certificate.objects.count()
    cases = [
        (client.post("/enroll/", "not json", content_type="application/json"), 400),
        (client.post("/enroll/", {"token": created.secret}, content_type="application/json"), 400),
        (client.post("/enroll/", {"token": 1, "csr": "x"}, content_type="application/json"), 400),
        (client.post("/enroll/", [1, 2], content_type="application/json"), 400),
        (client.post("/enroll/", {"token": created.secret, "csr": "x"}), 415),
        (enroll(client, created.secret, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"), 400),
        (enroll(client, created.secret, pem_of(tampered_csr())), 400),
        (enroll(client, created.secret, make_csr("r1.fleet.example.com", ca=True)), 400),
        (enroll(client, created.secret, make_csr("r1.fleet.example.com"), ca="no-such-ca"), 404),
        (enroll(client, created.secret, make_csr("r1.fleet.example.com"), ca=["x"]), 400),
        (client.get("/enroll/"), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, response.content
        if status != 405:
            assert response.json()["error"]["code"]
    unchanged(created.token, before)


def test_a_refusal_by_the_profile_leaves_the_token_usable(client, make_token):
    """The issuance service refuses inside the claiming transaction: the claim rolls back with it."""
    created = make_token(profile="email", san_patterns=["DNS:*.fleet.example.com"])
    before = Certificate.objects.count()
    response = enroll(client, created.secret, make_csr("r1.fleet.example.com"))
    assert response.status_code in (400, 422), response.content
    unchanged(created.token, before)
    assert AuditEvent.objects.filter(action__in=["enrollment_token.use", "certificate.issue"]).count() == 0


def test_a_common_name_the_profile_turns_into_a_san_must_be_allowed_as_one(client, make_token):
    """A CN-only CSR under a TLS server profile gets its CN as a DNS SAN: a CN pattern alone does not allow it."""
    created = make_token(profile="server", san_patterns=["CN:robot-*"])
    before = Certificate.objects.count()
    response = enroll(client, created.secret, make_csr("robot-7", sans=[]))
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "name_not_allowed"
    unchanged(created.token, before)
    assert AuditEvent.objects.filter(action__in=["enrollment_token.use", "certificate.issue"]).count() == 0


def test_enrollment_is_rate_limited_per_address(client, make_token, settings):
    settings.PKI_ENROLL_RATE_PER_IP = 2
    created = make_token()
    for _ in range(2):
        assert enroll(client, "junk", make_csr("r1.fleet.example.com")).status_code == 401
    limited = enroll(client, created.secret, make_csr("r1.fleet.example.com"))
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    unchanged(created.token, 0 + Certificate.objects.count())


def test_a_client_certificate_profile_with_a_cn_pattern(client, make_token, intermediate_ca):
    created = make_token(profile="client", san_patterns=["CN:robot-*", "DNS:*.fleet.example.com"])
    response = enroll(client, created.secret, make_csr("robot-7", sans=["DNS:robot-7.fleet.example.com"]))
    assert response.status_code == 201, response.content
    leaf = x509.load_pem_x509_certificate(response.json()["certificate_pem"].encode())
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usages
