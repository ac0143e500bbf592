"""The OCSP GET fast path (certificates.ocsp_wsgi): the same answer as Django's view, or Django answers."""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from django.core import signals
from django.db import close_old_connections

from certificates import ocsp_wsgi
from certificates.ocsp_wsgi import with_ocsp_fast_path
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from pki_project.metrics import REQUESTS
from tests.publishing.conftest import ocsp_request_der

HANDED_ON = b"handed to django"


class Recorder:
    """Stands for Django: records that a request reached it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        start_response("418 I'm a teapot", [("Content-Type", "text/plain")])
        return [HANDED_ON]


@contextlib.contextmanager
def _connections_kept() -> Iterator[None]:
    """As Django's test client does: the request signals must not close the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def call(path: str, **environ: str) -> tuple[str, dict[str, str], bytes, Recorder]:
    django = Recorder()
    application = with_ocsp_fast_path(django)
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "testserver", "SERVER_PORT": "80", "HTTP_HOST": "testserver",
            "REMOTE_ADDR": "192.0.2.7", "wsgi.url_scheme": "http"}
    answer: dict[str, object] = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    with _connections_kept():
        body = b"".join(application({**base, **environ}, start_response))
    return answer["status"], answer["headers"], body, django


def _path(ca, leaf, nonce: bytes | None = None) -> str:
    request = ocsp_request_der(load_x509(leaf), load_x509(ca.certificate), nonce=nonce)
    return f"/pki/ocsp/{ca.slug}/{quote(base64.b64encode(request).decode(), safe='')}"


def _status(body: bytes) -> ocsp.OCSPCertStatus:
    answer = ocsp.load_der_ocsp_response(body)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return answer.certificate_status


@pytest.mark.django_db
def test_a_plain_get_gets_the_views_bytes_and_headers_without_django(client, intermediate_ca, leaf):
    path = _path(intermediate_ca, leaf)
    through_django = client.get(path)
    status, headers, body, django = call(path)
    assert django.calls == 0
    assert status == "200 OK"
    assert body == through_django.content  # the cached answer, not a second signature
    expected = {name: value for name, value in through_django.items()}
    assert set(headers) == set(expected)
    for name, value in expected.items():
        if name == "Cache-Control":  # max-age counts down by the second
            assert re.sub(r"max-age=\d+", "", headers[name]) == re.sub(r"max-age=\d+", "", value)
        else:
            assert headers[name] == value, name
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert int(headers["Content-Length"]) == len(body)


@pytest.mark.django_db
def test_a_revocation_changes_the_fast_answer_at_once(intermediate_ca, leaf, operator,
                                                      django_capture_on_commit_callbacks):
    path = _path(intermediate_ca, leaf)
    assert _status(call(path)[2]) is ocsp.OCSPCertStatus.GOOD
    assert _status(call(path)[2]) is ocsp.OCSPCertStatus.GOOD  # from this worker's memory
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(leaf, reason="keyCompromise", actor=operator)
    _, _, body, django = call(path)
    assert django.calls == 0
    assert _status(body) is ocsp.OCSPCertStatus.REVOKED


@pytest.mark.django_db
def test_a_nonce_is_signed_for_this_request_and_not_cacheable(intermediate_ca, leaf):
    _, headers, body, django = call(_path(intermediate_ca, leaf, nonce=b"n" * 16))
    assert django.calls == 0
    assert headers["Cache-Control"] == "no-store"
    nonce = ocsp.load_der_ocsp_response(body).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert nonce == b"n" * 16


@pytest.mark.django_db
def test_another_ca_is_unauthorized_and_never_cached(intermediate_ca, leaf):
    path = _path(intermediate_ca, leaf).replace(f"/{intermediate_ca.slug}/", "/no-such-ca/")
    _, headers, body, django = call(path)
    assert django.calls == 0
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.django_db
@pytest.mark.parametrize("environ", [
    {"REQUEST_METHOD": "POST"}, {"REQUEST_METHOD": "HEAD"}, {"HTTP_AUTHORIZATION": "Bearer pki_x_y"},
    {"HTTP_COOKIE": "pki_session=x"}, {"HTTP_IF_NONE_MATCH": '"x"'},
    {"HTTP_IF_MODIFIED_SINCE": "Fri, 04 Dec 2026 00:00:00 GMT"}, {"HTTP_X_FORWARDED_PROTO": "https"},
    {"wsgi.url_scheme": "https"}, {"HTTP_HOST": "evil.example.net"}, {"SCRIPT_NAME": "/prefix"},
    {"CONTENT_LENGTH": "5"},
], ids=["post", "head", "credentials", "cookie", "if-none-match", "if-modified-since", "forwarded-https", "https",
        "foreign-host", "script-name", "body"])
def test_what_django_must_answer_is_handed_on(intermediate_ca, leaf, environ):
    _, _, body, django = call(_path(intermediate_ca, leaf), **environ)
    assert (django.calls, body) == (1, HANDED_ON)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/pki/ocsp/", "/pki/ocsp/some-ca", "/pki/ocsp/some-ca/%%%not-base64",
                                  "/pki/crl/some-ca.crl", "/api/v1/certificates/"])
def test_other_paths_and_malformed_requests_are_handed_on(intermediate_ca, path):
    _, _, body, django = call(path)
    assert (django.calls, body) == (1, HANDED_ON)


@pytest.mark.django_db
def test_the_public_rate_limit_counts_fast_answers_and_django_refuses_past_it(intermediate_ca, leaf, settings):
    settings.PKI_PUBLIC_RATE_PER_IP = 1
    path = _path(intermediate_ca, leaf)
    assert call(path)[3].calls == 0
    assert call(path)[3].calls == 1  # past the limit: Django answers the 429 and audits it


@pytest.mark.django_db
def test_past_the_rate_limit_django_answers_try_later_and_audits_it(client, intermediate_ca, leaf, settings):
    from audit.models import AuditEvent

    settings.PKI_PUBLIC_RATE_PER_IP = 1
    path = _path(intermediate_ca, leaf)
    assert call(path, REMOTE_ADDR="127.0.0.1")[0] == "200 OK"  # the test client's address
    refused = client.get(path)
    assert refused.status_code == 429
    assert ocsp.load_der_ocsp_response(refused.content).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert AuditEvent.objects.filter(action="access.deny").exists()


@pytest.mark.django_db
def test_fast_answers_are_counted_by_route(intermediate_ca, leaf):
    counter = REQUESTS.labels("pki-ocsp-get", "GET", "2xx")
    before = counter._value.get()
    for _ in range(3):
        assert call(_path(intermediate_ca, leaf))[0] == "200 OK"
    assert counter._value.get() - before == 3


@pytest.mark.django_db
def test_an_answer_that_fails_is_handed_to_django(intermediate_ca, leaf, settings):
    from certificates.models import Certificate, CertificateKind
    from certificates.signers import forget_all_signing_keys

    path = _path(intermediate_ca, leaf, nonce=b"f" * 16)  # a nonce: signed on every request
    assert call(path)[3].calls == 0
    responder = Certificate.objects.get(issuer=intermediate_ca, kind=CertificateKind.OCSP_RESPONDER)
    (sealed,) = [found for found in Path(settings.PKI_DATA_DIR).rglob(Path(responder.key_path).name) if found.is_dir()]
    shutil.rmtree(sealed)  # the responder's key is gone: signing fails (internalError)
    forget_all_signing_keys()
    assert call(path)[3].calls == 1


def test_the_request_signals_run_at_most_once_a_second_per_thread():
    ocsp_wsgi._thread.housekeeping_at = float("-inf")
    assert ocsp_wsgi._housekeeping_due()
    assert not ocsp_wsgi._housekeeping_due()
    ocsp_wsgi._thread.housekeeping_at -= ocsp_wsgi.HOUSEKEEPING_SECONDS
    assert ocsp_wsgi._housekeeping_due()
    seen = []
    other = threading.Thread(target=lambda: seen.append(ocsp_wsgi._housekeeping_due()))
    other.start()
    other.join()
    assert seen == [True]  # each thread has its own connections, and its own clock
