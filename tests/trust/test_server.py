"""The server's part: anonymous requests cannot fill the disk or freeze the server; names
without bidi tricks. Each attack against a live gunicorn (SQLite and PostgreSQL), refused with the
stored state unchanged.

The installation of this module runs with short timeouts (header 3 s, body 4 s) so that the refusals
of half-sent requests are seen in the test's time, a 100 MB bound on backups, and its own
PKI_UPLOAD_DIR.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trust.live import ORGANIZATION, ROOT_PASSWORD, LivePKI, Response, live_pki

pytestmark = pytest.mark.slow

HEADER_TIMEOUT, BODY_TIMEOUT = 3, 4
BACKUP_BOUND = 100_000_000
SERVER_ENV = {"PKI_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "PKI_BODY_TIMEOUT": str(BODY_TIMEOUT),
              "PKI_IDLE_TIMEOUT": "30", "PKI_BACKUP_MAX_UPLOAD_BYTES": str(BACKUP_BOUND)}
BOUNDARY = "pki-test-boundary"
SMALL_LIMIT = 256 * 1024  # PKI_MAX_REQUEST_BYTES' default
QUICK = 2.0  # seconds: "at once", on a loaded machine


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request, tmp_path_factory) -> Iterator[LivePKI]:
    with live_pki(request.param, tmp_path_factory.mktemp(f"server-{request.param}"), SERVER_ENV) as instance:
        yield instance


# --------------------------------------------------------------------------- raw HTTP


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def multipart_preamble(field: str = "backup", filename: str = "backup.zip") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode()


def multipart_headers(length: int, key: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(length),
               "Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def answer(sock: socket.socket, timeout: float = 30) -> Response:
    """Read one HTTP answer from a raw socket (informational 100s skipped)."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return Response(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server may refuse to read: a reset once it answered is the expected outcome."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


def timed_health(live: LivePKI) -> float:
    started = time.monotonic()
    response = live.request("GET", "/health", timeout=30)
    assert response.status == 200
    return time.monotonic() - started


def upload_files(live: LivePKI) -> list[Path]:
    return sorted(path for path in live.upload_dir.glob("*") if path.is_file())


def system_upload_files() -> set[str]:
    """Django's default temporary upload files in the system's temporary directory."""
    return {name for name in os.listdir(tempfile.gettempdir()) if ".upload" in name}


def worker_pids(live: LivePKI) -> set[int]:
    """The pids of the gunicorn workers of this test's server (children of its arbiter)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == live.server.pid:
                pids.add(int(entry.name))
    return pids


def wait_until(condition, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# --------------------------------------------------------------------------- slow clients


def test_half_sent_requests_do_not_hold_the_workers(live: LivePKI):
    """Many more half-sent heads, half-sent bodies and idle connections than the workers have threads
    (2 x 8): /health still answers at once, and each half-sent request is answered 408 on time."""
    before, audit_head = live.fingerprint(), live.audit_head()
    half_heads, half_bodies, half_chunked, idle = [], [], [], []
    try:
        for _ in range(40):
            sock = live.raw_socket()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
            half_heads.append(sock)
        for _ in range(40):
            sock = live.raw_socket()
            sock.sendall(head("POST", "/auth/session", {"Content-Type": "application/json", "Content-Length": "200"})
                         + b'{"api_key": "')
            half_bodies.append(sock)
        for _ in range(10):
            sock = live.raw_socket()
            sock.sendall(head("POST", "/auth/session", {"Content-Type": "application/json",
                                                        "Transfer-Encoding": "chunked"}) + b"5\r\n{\"api\r\n")
            half_chunked.append(sock)
        idle = [live.raw_socket() for _ in range(10)]
        time.sleep(0.5)
        durations = [timed_health(live) for _ in range(5)]
        assert max(durations) < QUICK, durations
        started = time.monotonic()
        assert answer(half_heads[0]).status == 408
        assert time.monotonic() - started < HEADER_TIMEOUT + QUICK
        assert answer(half_bodies[0]).status == 408
        assert answer(half_chunked[0]).status == 408
        assert time.monotonic() - started < BODY_TIMEOUT + QUICK
    finally:
        for sock in half_heads + half_bodies + half_chunked + idle:
            sock.close()
    assert live.fingerprint().differences(before) == []
    assert live.audit_events(after_seq=audit_head) == []
    assert timed_health(live) < QUICK


def test_a_stalled_body_is_answered_408_and_changes_nothing(live: LivePKI):
    before = live.fingerprint()
    with live.raw_socket() as sock:
        sock.sendall(head("POST", "/api/v1/organizations/", {
            "Authorization": f"Bearer {live.keys['global-admin']}", "Content-Type": "application/json",
            "Content-Length": "60"}) + b'{"name": "Stalled Corp", ')
        refused = answer(sock)
    assert refused.status == 408
    assert live.fingerprint().differences(before) == []


# --------------------------------------------------------------------------- bodies that would fill the disk


def test_an_oversized_anonymous_multipart_login_is_refused_at_once(live: LivePKI):
    """The review's 2.18 GB: a multipart body of 2 GB declared to POST /auth/session is refused before a byte of
    it is read, and no temporary file appears anywhere."""
    before, audit_head, system_files = live.fingerprint(), live.audit_head(), system_upload_files()
    with live.raw_socket() as sock:
        started = time.monotonic()
        sock.sendall(head("POST", "/auth/session", multipart_headers(2_000_000_000)))
        send_quietly(sock, multipart_preamble("api_key") + b"x" * 65536)
        refused = answer(sock)
        elapsed = time.monotonic() - started
    assert refused.status == 413
    assert refused.error_code == "too_large"
    assert refused.header("connection") == "close"
    assert elapsed < QUICK
    assert upload_files(live) == []
    assert system_upload_files() <= system_files
    assert live.fingerprint().differences(before) == []
    assert live.audit_events(after_seq=audit_head) == []


@pytest.mark.parametrize("path", ["/auth/session", "/api/v1/organizations/", "/pki/ocsp/acme-issuing/"])
def test_multipart_is_refused_where_no_file_is_taken(live: LivePKI, path: str):
    before = live.fingerprint()
    body = multipart_preamble("api_key", "key.txt") + b"x" * 1000 + f"\r\n--{BOUNDARY}--\r\n".encode()
    response = live.request("POST", path, key="global-admin", body=body,
                            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status == 415, response.body
    assert response.error_code == "unsupported_media_type"
    assert upload_files(live) == []
    assert live.fingerprint().differences(before) == []


def test_a_body_over_the_limit_is_refused_declared_or_chunked(live: LivePKI):
    before = live.fingerprint()
    declared = live.request("POST", "/auth/session", body=b"{" + b" " * SMALL_LIMIT + b"}",
                            headers={"Content-Type": "application/json"})
    assert declared.status == 413
    assert declared.error_code == "too_large"
    with live.raw_socket() as sock:  # no length declared: counted while read, cut at the limit
        sock.sendall(head("POST", "/auth/session", {"Content-Type": "application/json",
                                                    "Transfer-Encoding": "chunked", "Accept": "application/json"}))
        chunk = b"x" * 32768
        for _ in range(SMALL_LIMIT // len(chunk) + 4):
            send_quietly(sock, b"%x\r\n%s\r\n" % (len(chunk), chunk))
        send_quietly(sock, b"0\r\n\r\n")
        chunked = answer(sock)
    assert chunked.status == 413
    assert chunked.error_code == "too_large"
    assert live.fingerprint().differences(before) == []


def test_a_chunked_body_within_the_limit_is_served(live: LivePKI):
    """Counting does not break what is legitimate: a chunked JSON login is read and answered."""
    with live.raw_socket() as sock:
        body = b'{"api_key": "' + live.keys["user"].encode() + b'"}'
        sock.sendall(head("POST", "/auth/session", {"Content-Type": "application/json",
                                                    "Transfer-Encoding": "chunked", "Accept": "application/json"})
                     + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        signed_in = answer(sock)
    assert signed_in.status == 200, signed_in.body
    assert signed_in.json()["role"] == "user"


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("manager", 403), ("admin", 403)])
def test_a_restore_upload_is_read_only_for_a_global_admin(live: LivePKI, role: str | None, status: int):
    """An organization's admin, a manager, anyone anonymous: refused before the body is read, nothing on disk."""
    before = live.fingerprint()
    key = live.keys[role] if role else None
    with live.raw_socket() as sock:
        started = time.monotonic()
        sock.sendall(head("POST", "/admin/restore/database", multipart_headers(50_000_000, key)))
        send_quietly(sock, multipart_preamble() + b"P" * 262144)
        refused = answer(sock)
        elapsed = time.monotonic() - started
    assert refused.status == status, refused.body
    assert elapsed < QUICK
    assert upload_files(live) == []
    assert live.fingerprint().differences(before) == []


def test_a_restore_upload_over_the_backup_bound_is_refused_at_once(live: LivePKI):
    before = live.fingerprint()
    with live.raw_socket() as sock:
        sock.sendall(head("POST", "/admin/restore/database",
                          multipart_headers(BACKUP_BOUND + 1, live.keys["global-admin"])))
        send_quietly(sock, multipart_preamble() + b"P" * 65536)
        refused = answer(sock)
    assert refused.status == 413
    assert refused.error_code == "too_large"
    assert upload_files(live) == []
    assert live.fingerprint().differences(before) == []


def test_a_worker_killed_mid_upload_leaves_no_file(live: LivePKI):
    """A global admin's restore upload streams to PKI_UPLOAD_DIR (0700); the worker writing it is killed
    (as gunicorn's timeout or the OOM killer would): the arbiter removes its file, a new worker serves."""
    before, audit_head = live.fingerprint(), live.audit_head()
    with live.raw_socket() as sock:
        sock.sendall(head("POST", "/admin/restore/database",
                          multipart_headers(50_000_000, live.keys["global-admin"])))
        sock.sendall(multipart_preamble())
        for _ in range(32):
            sock.sendall(b"P" * 65536)
        assert wait_until(lambda: any(path.stat().st_size >= 1_000_000 for path in upload_files(live)), 30), \
            "the upload never reached the upload directory"
        [partial] = upload_files(live)
        assert live.upload_dir.stat().st_mode & 0o777 == 0o700
        assert partial.stat().st_mode & 0o777 == 0o600
        pid = int(partial.name.rsplit("-", 2)[-2])
        assert pid in worker_pids(live), "the file names a process that is not a worker of this server"
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: upload_files(live) == [], 10), upload_files(live)
    assert wait_until(lambda: len(worker_pids(live)) == 2, 30)
    assert timed_health(live) < QUICK
    assert live.fingerprint().differences(before) == []
    assert not [event for event in live.audit_events(after_seq=audit_head) if event["action"] == "backup.restore"]


# --------------------------------------------------------------------------- names


RLO = "\u202e"


@pytest.mark.parametrize(("path", "body_of"), [
    ("/api/v1/cas/", lambda live: {"kind": "root", "name": f"Acme {RLO}AC tooR", "organization": ORGANIZATION,
                                    "root_password": ROOT_PASSWORD, "key_type": "ec-p256"}),
    ("/api/v1/cas/", lambda live: {"kind": "intermediate", "name": "Acme\u2066 Issuing", "parent": "acme-root",
                                    "root_password": ROOT_PASSWORD}),
    ("/api/v1/certificates/", lambda live: {"ca": "acme-issuing", "profile": "server",
                                             "common_name": f"www.{RLO}moc.elpmaxe", "key_type": "ec-p256"}),
    ("/api/v1/certificates/", lambda live: {"ca": "acme-issuing", "profile": "server",
                                             "sans": ["DNS:pay\u200bpal.example"], "key_type": "ec-p256"}),
    ("/api/v1/organizations/", lambda live: {"name": f"Other{RLO} Corp"}),
])
def test_names_with_bidi_or_invisible_characters_are_refused(live: LivePKI, path: str, body_of):
    before, audit_head = live.fingerprint(), live.audit_head()
    response = live.request("POST", path, key="global-admin", json_body=body_of(live))
    assert response.status == 400, response.body
    assert response.error_code in ("subject_invalid", "san_invalid", "invalid")
    assert "U+" in response.json()["error"]["message"]
    assert live.fingerprint().differences(before) == []
    assert not [event for event in live.audit_events(after_seq=audit_head) if event["outcome"] == "success"]
