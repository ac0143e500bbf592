"""revokeCert (RFC 8555 7.6) through the project's revocation service; rate limits; clean-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from django.core.management import call_command
from django.utils import timezone

from acme_server.models import Authorization, Nonce, Order
from audit.models import AuditEvent
from certificates.crypto.fingerprints import certificate_fingerprint_sha256
from certificates.models import Certificate
from certificates.services.crls import latest_delta_crl
from certificates.services.ocsp import answer_ocsp_request
from tests.acme.flow import b64, issue, new_order
from tests.acme.test_protocol import assert_refused, state

pytestmark = pytest.mark.django_db


def _ocsp_status(certificate: x509.Certificate, issuer: x509.Certificate, slug: str) -> ocsp.OCSPCertStatus:
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
    answer = answer_ocsp_request(slug, request.public_bytes(serialization.Encoding.DER))
    return ocsp.load_der_ocsp_response(answer.der).certificate_status


def _issued(client, outcomes, *names):
    _order, _url, chain = issue(client, outcomes, *names)
    certs = x509.load_pem_x509_certificates(chain)
    return certs[0], certs[1]


def test_revoke_with_the_account_key_shows_in_ocsp_and_crl(client_with_account, outcomes, issuing_ca,
                                                             django_capture_on_commit_callbacks):
    leaf, issuer = _issued(client_with_account, outcomes, "www.example.com")
    assert _ocsp_status(leaf, issuer, issuing_ca.slug) == ocsp.OCSPCertStatus.GOOD
    der = leaf.public_bytes(serialization.Encoding.DER)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client_with_account.post(client_with_account.directory["revokeCert"],
                                          {"certificate": b64(der), "reason": 4})
    assert answer.status == 200, answer.body
    row = Certificate.objects.get(fingerprint_sha256=certificate_fingerprint_sha256(leaf))
    assert row.revocation_reason == "superseded"
    assert _ocsp_status(leaf, issuer, issuing_ca.slug) == ocsp.OCSPCertStatus.REVOKED
    crl = x509.load_der_x509_crl(bytes(latest_delta_crl(issuing_ca).der))  # a revocation signs a delta at once
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    revoke_event = AuditEvent.objects.get(action="certificate.revoke", target_id=str(row.pk))
    assert revoke_event.actor_label.startswith("acme:")
    assert AuditEvent.objects.filter(action="acme.certificate_revoke", target_id=str(row.pk)).count() == 1
    assert_refused(client_with_account.post(client_with_account.directory["revokeCert"], {"certificate": b64(der)}),
                   "alreadyRevoked", 400)


def test_revoke_with_the_certificate_key(client_with_account, outcomes, issuing_ca, make_client):
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.acme.flow import csr_der

    answer = new_order(client_with_account, "www.example.com")
    from tests.acme.flow import prove_all

    prove_all(client_with_account, answer.json(), outcomes)
    key = ec.generate_private_key(ec.SECP256R1())
    der_csr, _ = csr_der(["www.example.com"], key=key)
    order = client_with_account.post(answer.json()["finalize"], {"csr": b64(der_csr)}).json()
    leaf = x509.load_pem_x509_certificates(client_with_account.post(order["certificate"], None).body)[0]
    der = leaf.public_bytes(serialization.Encoding.DER)
    stranger = make_client()  # not an account: signs with a jwk
    before = state()
    assert_refused(stranger.post(stranger.directory["revokeCert"], {"certificate": b64(der)}, use_jwk=True),
                   "unauthorized", 403)
    assert state() == before
    by_key = make_client(key)
    answer = by_key.post(by_key.directory["revokeCert"], {"certificate": b64(der), "reason": 1}, use_jwk=True)
    assert answer.status == 200, answer.body
    revoked = Certificate.objects.get(fingerprint_sha256=certificate_fingerprint_sha256(leaf))
    assert revoked.revocation_reason == "keyCompromise"


def test_revoke_refusals(client_with_account, outcomes, make_client, acme_org):
    from acme_server.services.eab import create_eab_key
    from pki_project.actor import Actor

    leaf, _issuer = _issued(client_with_account, outcomes, "www.example.com")
    der = b64(leaf.public_bytes(serialization.Encoding.DER))
    second = create_eab_key(acme_org, actor=Actor.operator("tests"))
    other = make_client()
    other.new_account(eab=(second.credential.key_id, second.hmac_key))
    before = state()
    assert_refused(other.post(other.directory["revokeCert"], {"certificate": der}), "unauthorized", 403)
    for reason in (2, 6, 8, 10, 11, -1, "1", True):
        assert_refused(client_with_account.post(client_with_account.directory["revokeCert"],
                                                {"certificate": der, "reason": reason}), "badRevocationReason")
    assert_refused(client_with_account.post(client_with_account.directory["revokeCert"],
                                            {"certificate": b64(b"not a certificate")}), "malformed")
    assert state() == before


def test_new_order_rate_limit_per_account(client_with_account, settings):
    settings.PKI_ACME_ORDERS_PER_ACCOUNT = 1
    assert new_order(client_with_account, "a.example.com").status == 201
    before = state()
    answer = new_order(client_with_account, "b.example.com")
    assert_refused(answer, "rateLimited", 429)
    assert int(answer.headers["retry-after"]) >= 1
    assert state() == before


def test_new_account_rate_limit_per_ip(make_client, eab_key, settings):
    settings.PKI_ACME_ACCOUNTS_PER_IP = 1
    settings.PKI_ACME_EAB_REQUIRED = False
    assert make_client().new_account().status == 201
    before = state()
    assert_refused(make_client().new_account(), "rateLimited", 429)
    assert state() == before


def test_acme_cleanup_deletes_expired_nonces_and_orders(client_with_account, outcomes):
    past = timezone.now() - timedelta(seconds=1)
    stale = new_order(client_with_account, "stale.example.com").headers["location"].rsplit("/", 1)[1]
    issue(client_with_account, outcomes, "kept.example.com")
    Order.objects.update(expires_at=past)
    client_with_account.fresh_nonce()
    Nonce.objects.update(expires_at=past)
    fresh = client_with_account.fresh_nonce()
    from io import StringIO

    out = StringIO()
    call_command("acme_cleanup", stdout=out)
    assert "expired order(s)" in out.getvalue()
    assert not Order.objects.filter(name=stale).exists()
    assert Order.objects.filter(status="valid").count() == 1  # it links a certificate to its account
    assert not Authorization.objects.filter(order__name=stale).exists()
    assert list(Nonce.objects.values_list("value", flat=True)) == [fresh]
