"""HTTP details of the relying parties' endpoints: conditional requests on CRLs and OCSP GET answers,
OCSP requests with several CertIDs, and OCSP paths that carry no request."""

from __future__ import annotations

import base64
import subprocess
from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography.x509 import ocsp
from django.utils.http import http_date

from certificates.services.crls import generate_delta_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.services.records import load_x509
from tests.certificates.csrs import make_csr
from tests.judges import write_pems
from tests.publishing.conftest import ocsp_request_der

OCSP_TYPE = "application/ocsp-response"


def _get_ocsp(client, slug: str, der: bytes, **headers):
    return client.get(f"/pki/ocsp/{slug}/{quote(base64.b64encode(der).decode(), safe='')}", headers=headers)


def _malformed(response) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == OCSP_TYPE
    assert ocsp.load_der_ocsp_response(response.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


# --- CRLs: If-Modified-Since ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", [".crl", ".pem", ".delta.crl", ".delta.pem"])
def test_crl_downloads_answer_304_to_if_modified_since_at_or_after_this_update(client, intermediate_ca, operator,
                                                                              suffix):
    base = generate_crl(intermediate_ca, actor=operator)
    crl = generate_delta_crl(intermediate_ca, actor=operator) if ".delta" in suffix else base
    url = f"/pki/crl/{intermediate_ca.slug}{suffix}"
    first = client.get(url)
    assert first.status_code == 200
    assert first["Last-Modified"] == http_date(crl.this_update.timestamp())
    for since in (crl.this_update, crl.this_update + timedelta(minutes=5)):
        again = client.get(url, headers={"If-Modified-Since": http_date(since.timestamp())})
        assert again.status_code == 304
        assert again.content == b""
        assert again["Last-Modified"] == first["Last-Modified"]
        assert again["ETag"] == first["ETag"]
    older = client.get(url, headers={"If-Modified-Since": http_date((crl.this_update - timedelta(seconds=1))
                                                                    .timestamp())})
    assert older.status_code == 200
    assert older.content == first.content
    assert client.get(url, headers={"If-Modified-Since": "not a date"}).status_code == 200
    # RFC 9110 13.1.3: If-None-Match, when present, decides alone.
    assert client.get(url, headers={"If-None-Match": '"other"',
                                    "If-Modified-Since": first["Last-Modified"]}).status_code == 200


@pytest.mark.django_db
def test_a_new_crl_is_served_in_full_to_a_client_holding_the_old_one(client, intermediate_ca, operator):
    old = generate_crl(intermediate_ca, actor=operator, now=None)
    url = f"/pki/crl/{intermediate_ca.slug}.crl"
    held = client.get(url)["Last-Modified"]
    new = generate_crl(intermediate_ca, actor=operator, now=old.this_update + timedelta(minutes=10))
    response = client.get(url, headers={"If-Modified-Since": held})
    assert response.status_code == 200
    assert response.content == bytes(new.der)


# --- OCSP GET: If-None-Match ------------------------------------------------------------------------


@pytest.mark.django_db
def test_ocsp_get_answers_304_to_its_etag_with_rfc5019_headers(client, intermediate_ca, leaf):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    first = _get_ocsp(client, intermediate_ca.slug, request)
    assert first.status_code == 200
    answer = ocsp.load_der_ocsp_response(first.content)
    etag = first["ETag"]
    again = _get_ocsp(client, intermediate_ca.slug, request, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert again["Last-Modified"] == http_date(answer.this_update_utc.timestamp())
    assert again["Expires"] == http_date(answer.next_update_utc.timestamp())
    max_age = int(again["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= (answer.next_update_utc - answer.this_update_utc).total_seconds()
    assert "public" in again["Cache-Control"]
    weak = _get_ocsp(client, intermediate_ca.slug, request, **{"If-None-Match": f'"nope", W/{etag}'})
    assert weak.status_code == 304
    other = _get_ocsp(client, intermediate_ca.slug, request, **{"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert other.content == first.content
    since = _get_ocsp(client, intermediate_ca.slug, request, **{"If-Modified-Since": first["Last-Modified"]})
    assert since.status_code == 304


@pytest.mark.django_db
def test_post_answers_and_nonce_answers_are_never_304(client, intermediate_ca, leaf):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate), nonce=b"n" * 16)
    first = _get_ocsp(client, intermediate_ca.slug, request)
    assert first["Cache-Control"] == "no-store"
    assert "ETag" not in first
    plain = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    etag = _get_ocsp(client, intermediate_ca.slug, plain)["ETag"]
    posted = client.post(f"/pki/ocsp/{intermediate_ca.slug}/", plain, content_type="application/ocsp-request",
                         headers={"If-None-Match": etag})
    assert posted.status_code == 200
    assert ocsp.load_der_ocsp_response(posted.content).certificate_status is ocsp.OCSPCertStatus.GOOD


# --- Several CertIDs in one request ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_with_several_cert_ids_is_refused_as_malformed_on_get_and_post(client, intermediate_ca, leaf,
                                                                                operator, tmp_path):
    """cryptography's OCSPResponseBuilder signs one SingleResponse only, so a request for several
    certificates (which RFC 5019 2.1.1 clients never send) gets malformedRequest, the same on GET and
    POST. The request is made by `openssl ocsp` with two -cert options, as a real client would."""
    second = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("two.example.com")),
                               actor=operator)
    issuer = write_pems(tmp_path / "issuer.pem", [load_x509(intermediate_ca.certificate)])
    one = write_pems(tmp_path / "one.pem", [load_x509(leaf)])
    two = write_pems(tmp_path / "two.pem", [load_x509(second)])
    out = tmp_path / "request.der"
    made = subprocess.run(["openssl", "ocsp", "-issuer", str(issuer), "-cert", str(one), "-cert", str(two),
                           "-no_nonce", "-reqout", str(out)], capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    text = subprocess.run(["openssl", "ocsp", "-reqin", str(out), "-req_text"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert text.count("Certificate ID:") == 2
    der = out.read_bytes()
    _malformed(client.post(f"/pki/ocsp/{intermediate_ca.slug}/", der, content_type="application/ocsp-request"))
    _malformed(_get_ocsp(client, intermediate_ca.slug, der))
    # One CertID of the same two is answered.
    single = client.post(f"/pki/ocsp/{intermediate_ca.slug}/",
                         ocsp_request_der(load_x509(second), load_x509(intermediate_ca.certificate)),
                         content_type="application/ocsp-request")
    assert ocsp.load_der_ocsp_response(single.content).certificate_status is ocsp.OCSPCertStatus.GOOD


# --- No request at all: an OCSP error, never a page -----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["{ca}/", "{ca}", "", "not%20a%20slug/", "{ca}//", "{ca}/%25%25garbage",
                                  "{ca}/AAAA", "a/b/c"])
def test_a_get_without_a_request_answers_malformed_request_never_html(client, intermediate_ca, path):
    response = client.get("/pki/ocsp/" + path.format(ca=intermediate_ca.slug))
    _malformed(response)
    assert b"<html" not in response.content.lower()
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_post_without_the_trailing_slash_is_answered_and_one_to_no_ca_is_unauthorized(client, intermediate_ca,
                                                                                      leaf):
    request = ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate))
    answered = client.post(f"/pki/ocsp/{intermediate_ca.slug}", request, content_type="application/ocsp-request")
    assert ocsp.load_der_ocsp_response(answered.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    nowhere = client.post("/pki/ocsp/", request, content_type="application/ocsp-request")
    assert nowhere["Content-Type"] == OCSP_TYPE
    assert ocsp.load_der_ocsp_response(nowhere.content).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    _malformed(client.post("/pki/ocsp/", b"garbage", content_type="application/ocsp-request"))
