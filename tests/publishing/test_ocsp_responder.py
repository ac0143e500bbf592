"""The OCSP responder through Django's test client: statuses, CertID hashes, nonces, errors, caching."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.utils import timezone

from certificates.crypto.ocsp import MAX_OCSP_REQUEST_SIZE
from certificates.models import Certificate, CertificateKind, PresignedOCSPResponse
from certificates.services import ocsp as ocsp_service
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from tests.certificates.conftest import ROOT_PASSWORD
from tests.judges import pkilint_findings
from tests.publishing.conftest import SHA1, ocsp_request_der

OCSP_TYPE = "application/ocsp-response"
ALGORITHMS = [SHA1, hashes.SHA256()]


def post(client, slug: str, body: bytes):
    return client.post(f"/pki/ocsp/{slug}/", data=body, content_type="application/ocsp-request")


def get(client, slug: str, body: bytes):
    return client.get(f"/pki/ocsp/{slug}/{quote(base64.b64encode(body).decode(), safe='')}")


def parsed(response) -> ocsp.OCSPResponse:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == OCSP_TYPE
    return ocsp.load_der_ocsp_response(response.content)


def verify_signed_by_delegated_responder(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    (responder,) = answer.certificates
    assert responder.issuer == issuer.subject
    responder.verify_directly_issued_by(issuer)
    assert ExtendedKeyUsageOID.OCSP_SIGNING in responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert responder.not_valid_after_utc - responder.not_valid_before_utc <= timedelta(days=7, minutes=2)
    verify_signature(responder, answer)


def verify_signature(signer: x509.Certificate, answer: ocsp.OCSPResponse) -> None:
    """The fixtures' keys are EC: ECDSA over tbsResponseData (raises InvalidSignature when wrong)."""
    signer.public_key().verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm))


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("method", [post, get], ids=["POST", "GET"])
def test_good_then_revoked_with_time_and_reason(client, intermediate_ca, leaf, operator, algorithm, method,
                                                django_capture_on_commit_callbacks):
    issuer, leaf_x509 = load_x509(intermediate_ca.certificate), load_x509(leaf)
    request = ocsp_request_der(leaf_x509, issuer, algorithm)
    answer = parsed(method(client, intermediate_ca.slug, request))
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == leaf_x509.serial_number
    assert answer.hash_algorithm.name == algorithm.name
    verify_signed_by_delegated_responder(answer, issuer)
    assert answer.next_update_utc - answer.this_update_utc == timedelta(hours=24)  # the default (BR 4.9.10)

    invalid_since = timezone.now().replace(microsecond=0) - timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(leaf, reason="keyCompromise", actor=operator, invalidity_date=invalid_since)
    answer = parsed(method(client, intermediate_ca.slug, request))
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    leaf.refresh_from_db()
    assert answer.revocation_time_utc == leaf.revoked_at
    assert answer.revocation_reason is x509.ReasonFlags.key_compromise
    verify_signed_by_delegated_responder(answer, issuer)


@pytest.mark.django_db
def test_unknown_serial_is_unknown(client, intermediate_ca, root_ca):
    issuer = load_x509(intermediate_ca.certificate)
    stranger = load_x509(root_ca.certificate)  # not issued by the intermediate: its serial is unknown there
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *ocsp_service.issuer_hashes(issuer, SHA1), stranger.serial_number, SHA1)
    answer = parsed(post(client, intermediate_ca.slug, builder.build().public_bytes(Encoding.DER)))
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.django_db
def test_nonce_is_echoed_and_each_nonce_request_is_signed(client, intermediate_ca, leaf):
    issuer, leaf_x509 = load_x509(intermediate_ca.certificate), load_x509(leaf)
    before = ocsp_service.signature_count()
    for nonce in (b"\x01" * 16, b"\x02" * 32):
        answer = parsed(post(client, intermediate_ca.slug, ocsp_request_der(leaf_x509, issuer, nonce=nonce)))
        assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert ocsp_service.signature_count() == before + 2


@pytest.mark.django_db
def test_cache_hit_costs_no_signature_and_revocation_invalidates_at_once(client, intermediate_ca, leaf, operator,
                                                                         django_capture_on_commit_callbacks):
    issuer, leaf_x509 = load_x509(intermediate_ca.certificate), load_x509(leaf)
    request = ocsp_request_der(leaf_x509, issuer)
    first = post(client, intermediate_ca.slug, request)
    signed = ocsp_service.signature_count()
    for _ in range(5):
        again = post(client, intermediate_ca.slug, request)
        assert again.content == first.content
        get_answer = get(client, intermediate_ca.slug, request)
        assert get_answer.content == first.content
    assert ocsp_service.signature_count() == signed  # ten answers, no signature

    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(leaf, reason="superseded", actor=operator)
    answer = parsed(post(client, intermediate_ca.slug, request))
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert ocsp_service.signature_count() == signed + 1


@pytest.mark.django_db
def test_get_answers_carry_rfc5019_caching_headers(client, intermediate_ca, leaf):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    response = get(client, intermediate_ca.slug, request)
    answer = parsed(response)
    cache_control = response["Cache-Control"]
    assert "public" in cache_control
    assert "no-transform" in cache_control
    assert "must-revalidate" in cache_control
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    assert 86300 <= max_age <= 86400  # up to nextUpdate: PKI_OCSP_RESPONSE_VALIDITY, a day
    assert response["ETag"].startswith('"')
    assert len(response["ETag"]) == 66
    assert response["Last-Modified"]
    assert response["Expires"]
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert post(client, intermediate_ca.slug, request)["Cache-Control"] == "no-store"


def _status(response) -> ocsp.OCSPResponseStatus:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == OCSP_TYPE
    return ocsp.load_der_ocsp_response(response.content).response_status


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"", b"garbage that is no OCSP request", b"\x30\x82\xff\xff\x30", b"\x30" * 200],
    ids=["empty", "garbage", "bad-length", "nonsense-der"],
)
def test_garbage_posts_get_malformed_request(client, intermediate_ca, body):
    assert _status(post(client, intermediate_ca.slug, body)) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.django_db
def test_truncated_and_oversized_requests_get_malformed_request(client, intermediate_ca, leaf):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate), nonce=b"n" * 16)
    for cut in (1, 10, len(request) // 2, len(request) - 1):
        assert _status(post(client, intermediate_ca.slug, request[:cut])) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    oversized = request + b"\x00" * (MAX_OCSP_REQUEST_SIZE + 1)
    assert _status(post(client, intermediate_ca.slug, oversized)) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    huge = b"\x30" * (3 * 1024 * 1024)  # beyond Django's DATA_UPLOAD_MAX_MEMORY_SIZE: still no 4xx/5xx page
    assert _status(post(client, intermediate_ca.slug, huge)) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    for path in ("not-base64!!!", quote(base64.b64encode(request[:20]).decode(), safe=""), "A" * 40000, "%ZZ"):
        response = client.get(f"/pki/ocsp/{intermediate_ca.slug}/{path}")
        assert _status(response) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.django_db
def test_unknown_ca_and_foreign_cert_id_are_unauthorized(client, intermediate_ca, root_ca, leaf):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    assert _status(post(client, "no-such-ca", request)) is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert _status(get(client, "no-such-ca", request)) is ocsp.OCSPResponseStatus.UNAUTHORIZED
    # The CertID names the intermediate, the URL the root: the root is not authoritative for it (RFC 6960 2.3).
    assert _status(post(client, root_ca.slug, request)) is ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.django_db
def test_responder_certificate_is_renewed_when_half_its_life_is_gone(intermediate_ca):
    issuer = ocsp_service._issuer(intermediate_ca.slug)
    now = timezone.now().replace(microsecond=0)
    first, _ = ocsp_service.current_responder(issuer, now)
    same, _ = ocsp_service.current_responder(issuer, now + timedelta(days=3))
    assert same == first
    renewed, key = ocsp_service.current_responder(issuer, now + timedelta(days=4))
    assert renewed != first
    assert renewed.public_key() == key.public_key()
    assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert Certificate.objects.filter(issuer=intermediate_ca, kind=CertificateKind.OCSP_RESPONDER).count() == 2


@pytest.mark.django_db
def test_the_roots_children_get_pre_signed_answers(client, root_ca, intermediate_ca, operator,
                                                   django_capture_on_commit_callbacks):
    root_x509, inter_x509 = load_x509(root_ca.certificate), load_x509(intermediate_ca.certificate)
    assert PresignedOCSPResponse.objects.filter(ca=root_ca, serial=intermediate_ca.certificate.serial).count() == 2
    signed = ocsp_service.signature_count()
    for algorithm in ALGORITHMS:
        answer = parsed(post(client, root_ca.slug, ocsp_request_der(inter_x509, root_x509, algorithm)))
        assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert answer.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(root_x509.public_key()).digest
        verify_signature(root_x509, answer)
        root_crl_next_update = root_ca.crls.order_by("-number").first().next_update
        assert answer.next_update_utc == root_crl_next_update
    assert ocsp_service.signature_count() == signed  # served as they were signed

    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(intermediate_ca.certificate, reason="cessationOfOperation", actor=operator,
                           root_password=ROOT_PASSWORD)
    answer = parsed(get(client, root_ca.slug, ocsp_request_der(inter_x509, root_x509, hashes.SHA256())))
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.cessation_of_operation


@pytest.mark.django_db
def test_answers_pass_pkilint(client, root_ca, intermediate_ca, leaf, operator, django_capture_on_commit_callbacks):
    inter_x509 = load_x509(intermediate_ca.certificate)
    documents = [post(client, intermediate_ca.slug, ocsp_request_der(load_x509(leaf), inter_x509)).content,
                 post(client, root_ca.slug, ocsp_request_der(inter_x509, load_x509(root_ca.certificate))).content]
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(leaf, reason="keyCompromise", actor=operator)
    documents.append(post(client, intermediate_ca.slug,
                          ocsp_request_der(load_x509(leaf), inter_x509, hashes.SHA256(), nonce=b"x" * 16)).content)
    for document in documents:
        assert pkilint_findings("lint_ocsp_response", document) == []


@pytest.mark.django_db
def test_public_endpoints_are_rate_limited_per_ip(client, intermediate_ca, leaf, settings):
    settings.PKI_PUBLIC_RATE_PER_IP = 3
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    statuses = [post(client, intermediate_ca.slug, request).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = post(client, intermediate_ca.slug, request)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert ocsp.load_der_ocsp_response(refused.content).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert client.get(f"/pki/crl/{intermediate_ca.slug}.crl").status_code == 429
    other = client.get(f"/pki/crl/{intermediate_ca.slug}.crl", REMOTE_ADDR="192.0.2.7")
    assert other.status_code == 200


@pytest.mark.django_db
def test_a_revoked_ca_certifies_no_new_responder(client, intermediate_ca, leaf, operator,
                                                 django_capture_on_commit_callbacks):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate), nonce=b"r" * 8)
    assert parsed(post(client, intermediate_ca.slug, request)).certificate_status is ocsp.OCSPCertStatus.GOOD
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(intermediate_ca.certificate, reason="keyCompromise", actor=operator,
                           root_password=ROOT_PASSWORD, revoke_children=True)
    responders = Certificate.objects.filter(issuer=intermediate_ca, kind=CertificateKind.OCSP_RESPONDER)
    assert responders.count() == 1
    assert responders.get().revoked_at is not None  # it went with its CA, and this worker forgot it
    assert _status(post(client, intermediate_ca.slug, request)) is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert responders.count() == 1


REDIS_URL = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _redis_cache(location: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location,
                        "KEY_PREFIX": f"pki-publishing-{uuid.uuid4().hex}",
                        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}


@pytest.mark.redis
@pytest.mark.django_db
def test_answers_are_cached_in_redis_when_it_is_the_shared_cache(client, intermediate_ca, leaf, settings):
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at PKI_TEST_REDIS_URL ({REDIS_URL})")
    settings.CACHES = _redis_cache(REDIS_URL)
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    first = post(client, intermediate_ca.slug, request)
    signed = ocsp_service.signature_count()
    assert post(client, intermediate_ca.slug, request).content == first.content
    assert ocsp_service.signature_count() == signed


@pytest.mark.django_db
def test_a_cache_outage_never_makes_a_5xx(client, intermediate_ca, leaf, settings):
    settings.CACHES = _redis_cache("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    answer = parsed(post(client, intermediate_ca.slug, request))
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert client.get(f"/pki/crl/{intermediate_ca.slug}.crl").status_code == 200
