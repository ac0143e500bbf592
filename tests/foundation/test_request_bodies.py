"""Request bodies: bounded before anything reads them, multipart only where a view takes a file, the
restore's upload read only for a global admin and streamed to the private PKI_UPLOAD_DIR.

A declared length far larger than the bytes actually sent is how these tests show that a body was *not*
read: the test client's input refuses to be read past its end, so any read would fail the request.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile, SimpleUploadedFile
from django.test import Client
from django.test.client import encode_multipart

from audit.models import AuditEvent
from organizations.models import Organization, SessionToken
from pki_project.tempfiles import owner_of
from pki_project.uploads import PrivateUploadedFile
from tests.certificates.csrs import make_csr

pytestmark = pytest.mark.django_db

LIMIT = 256 * 1024  # PKI_MAX_REQUEST_BYTES' default
BOUNDARY = "explicit-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(**fields) -> bytes:
    return encode_multipart(BOUNDARY, fields)


def state() -> tuple[int, int, int]:
    return Organization.objects.count(), SessionToken.objects.count(), AuditEvent.objects.count()


def error_code(response) -> str:
    return response.json()["error"]["code"]


def raw_post(client: Client, path: str, stream, *, content_type: str = "application/json", length: str = "",
             **extra):
    """POST whatever `stream` yields, declaring `length` (empty: none, as with a chunked body)."""
    return client.generic("POST", path, b"", **{"CONTENT_TYPE": content_type, "CONTENT_LENGTH": length,
                                                "wsgi.input": stream, "HTTP_ACCEPT": "application/json", **extra})


class RequestTimeout(TimeoutError):
    """What the server's stream raises on a deadline (pki_project.gunicorn_worker raises its own, a TimeoutError)."""


class StalledInput(io.RawIOBase):
    """The server's body stream when the client stops sending: like gunicorn's, `read(n)` gives n bytes or, when
    the client sent fewer before the deadline, a TimeoutError."""

    def __init__(self, sent: bytes = b"") -> None:
        self.sent = sent

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > len(self.sent):
            raise RequestTimeout("the request was not received in time")
        data, self.sent = self.sent[:size], self.sent[size:]
        return data


@pytest.fixture
def global_admin(make_principal_client) -> Client:
    return make_principal_client("admin")


@pytest.fixture
def upload_dir(settings) -> Path:
    return Path(settings.PKI_UPLOAD_DIR)


# --- bounds ----------------------------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_unread(client):
    before = state()
    response = client.post("/auth/session", b"{}", content_type="application/json",
                           CONTENT_LENGTH=str(2_000_000_000), HTTP_ACCEPT="application/json")
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    assert str(LIMIT) in response.json()["error"]["message"]
    assert state() == before


def test_a_body_just_over_the_limit_is_refused_and_one_at_the_limit_is_read(client):
    over = client.post("/auth/session", b"x" * (LIMIT + 1), content_type="application/json")
    assert over.status_code == 413
    at = client.post("/auth/session", b"{" + b" " * (LIMIT - 2) + b"}", content_type="application/json")
    assert at.status_code == 400  # read, then refused for what it says: no api_key
    assert error_code(at) == "invalid"


def test_a_malformed_content_length_is_a_400(client):
    response = client.post("/auth/session", b"{}", content_type="application/json", CONTENT_LENGTH="12abc")
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


def test_a_body_shorter_than_declared_is_a_400(client):
    before = state()
    response = raw_post(client, "/auth/session", io.BytesIO(b'{"api_key": '), length="40")
    assert response.status_code == 400
    assert error_code(response) == "incomplete_body"
    assert state() == before


def test_a_stalled_body_is_a_408(client):
    before = state()
    response = raw_post(client, "/auth/session", StalledInput(b'{"api_key": '), length="40")
    assert response.status_code == 408
    assert error_code(response) == "request_timeout"
    assert state() == before


def test_a_chunked_body_is_counted_and_cut_at_the_limit(client):
    before = state()
    too_big = raw_post(client, "/auth/session", io.BytesIO(b"x" * (LIMIT + 1)), HTTP_TRANSFER_ENCODING="chunked")
    assert too_big.status_code == 413
    stalled = raw_post(client, "/auth/session", StalledInput(b"{"), HTTP_TRANSFER_ENCODING="chunked")
    assert stalled.status_code == 408
    assert state() == before


def test_a_chunked_body_within_the_limit_is_served(make_principal_client, client):
    member = make_principal_client("user")
    body = json.dumps({"api_key": member.plain_key}).encode()
    response = raw_post(client, "/auth/session", io.BytesIO(body), HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "user"


# --- multipart -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/session", "/api/v1/organizations/", "/create-organization",
                                  "/pki/ocsp/some-ca/", "/api/v1/certificates/"])
def test_multipart_is_refused_where_no_file_is_taken(global_admin, path: str):
    before = state()
    response = global_admin.post(path, multipart(name="Acme", api_key="x"), content_type=MULTIPART)
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
    assert state() == before


def test_an_anonymous_multipart_login_of_gigabytes_is_refused_unread(client):
    response = client.post("/auth/session", multipart(api_key="x"), content_type=MULTIPART,
                           CONTENT_LENGTH=str(2_180_000_000), HTTP_ACCEPT="application/json")
    assert response.status_code == 413


def test_the_forms_with_a_file_field_take_it_in_memory(make_principal_client, organization, upload_dir):
    user = make_principal_client("user", organization)
    csr = SimpleUploadedFile("request.pem", make_csr("decode.example.com"), "application/pkcs10")
    response = user.post("/toolbox/decode", {"text": "", "file": csr})
    assert response.status_code == 200
    assert "decode.example.com" in response.content.decode()
    assert isinstance(response.wsgi_request.FILES["file"], InMemoryUploadedFile)
    assert list(upload_dir.iterdir()) == []


def test_a_form_with_a_file_over_the_limit_is_refused(make_principal_client, organization):
    user = make_principal_client("user", organization)
    big = SimpleUploadedFile("big.pem", b"x" * (LIMIT + 10))
    response = user.post("/toolbox/decode", {"text": "", "file": big})
    assert response.status_code == 413


# --- the restore's upload ------------------------------------------------------------------------


def restore(client: Client, body: bytes, **extra):
    return client.post("/admin/restore/database", body, content_type=MULTIPART, HTTP_ACCEPT="application/json",
                       **extra)


def test_the_restore_upload_streams_to_the_private_directory_and_is_removed(global_admin, upload_dir):
    body = multipart(backup=SimpleUploadedFile("backup.zip", b"not a zip, but a file"))
    response = restore(global_admin, body)
    assert response.status_code == 400  # the archive is refused by the restore itself...
    upload = response.wsgi_request.FILES["backup"]
    assert isinstance(upload, PrivateUploadedFile)  # ...after it was streamed to PKI_UPLOAD_DIR
    path = Path(upload.temporary_file_path())
    assert path.parent == upload_dir
    assert owner_of(path.name) is not None
    assert upload_dir.stat().st_mode & 0o777 == 0o700
    assert not path.exists()  # and removed with the request
    assert list(upload_dir.iterdir()) == []


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("manager", 403), ("admin", 403)])
def test_the_restore_upload_is_not_read_for_anyone_but_a_global_admin(make_principal_client, organization, role,
                                                                       status: int, upload_dir):
    """Anonymous, a manager, an organization's admin: refused before a byte of the (4 GB) body is read."""
    client = Client() if role is None else make_principal_client(role, organization)
    response = restore(client, multipart(backup=SimpleUploadedFile("b.zip", b"PK")), CONTENT_LENGTH="4000000000")
    assert response.status_code == status
    assert list(upload_dir.iterdir()) == []


def test_the_restore_upload_needs_a_declared_length_within_its_bound(global_admin, settings):
    settings.PKI_BACKUP_MAX_UPLOAD_BYTES = 1000
    over = restore(global_admin, multipart(backup=SimpleUploadedFile("b.zip", b"PK")), CONTENT_LENGTH="1001")
    assert over.status_code == 413
    chunked = raw_post(global_admin, "/admin/restore/database",
                       io.BytesIO(multipart(backup=SimpleUploadedFile("b.zip", b"PK"))), content_type=MULTIPART,
                       HTTP_TRANSFER_ENCODING="chunked")
    assert chunked.status_code == 411
    assert error_code(chunked) == "length_required"


def test_a_stalled_restore_upload_is_a_408_and_leaves_no_file(global_admin, upload_dir):
    """The first 64 KiB reach the file in PKI_UPLOAD_DIR, then the client stalls: the half-written file goes."""
    body = multipart(backup=SimpleUploadedFile("backup.zip", b"P" * 100_000))
    response = raw_post(global_admin, "/admin/restore/database", StalledInput(body[:70_000]),
                        content_type=MULTIPART, length=str(len(body)))
    assert response.status_code == 408
    assert list(upload_dir.iterdir()) == []


def test_the_ocsp_responder_answers_an_oversized_request_in_its_own_protocol_unread(client):
    """RFC 6960 section 2.3: an OCSP client gets an OCSP answer (malformedRequest), not an HTTP 413 page."""
    from cryptography.x509 import ocsp

    response = client.post("/pki/ocsp/some-ca/", b"\x30\x03\x02\x01\x00", content_type="application/ocsp-request",
                           CONTENT_LENGTH=str(2_000_000_000))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(response.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
