"""Done-when: `curl --cert client.pem --key client.key` signs in through a real nginx; everything else is refused.

Refused, each with its `auth.login` failure on the audit trail: a revoked client certificate, a
certificate from another CA (nginx cannot verify it and says so), a certificate this PKI issued but
nobody bound, a forged header sent straight to the app (untrusted address, missing secret, wrong
secret); no certificate at all is a 400. A session opened with a certificate ends as soon as the
certificate is revoked (the revocation state is read at each request).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.debian import ensure_tool
from tests.mtls.live import ISSUING, OTHER_ISSUING, PROXY_ADDRESS, PROXY_SECRET, Credential, LiveMtls, live_mtls

pytestmark = pytest.mark.django_db(transaction=True)


def foreign_credential(directory: Path) -> Credential:
    """A client certificate from a CA this PKI knows nothing about (same names, another key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtls Issuing")])
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "robot")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
    paths = Credential(directory / "foreign.pem", directory / "foreign.key")
    paths.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths


def with_cert(credential: Credential) -> list[str]:
    return ["--cert", str(credential.certificate), "--key", str(credential.key)]


def forged_headers(credential: Credential, secret: str | None) -> list[str]:
    escaped = quote(credential.certificate.read_text(), safe="")
    headers = ["-H", f"X-PKI-Client-Cert: {escaped}", "-H", "X-PKI-Client-Verify: SUCCESS"]
    return headers + (["-H", f"X-PKI-Proxy-Secret: {secret}"] if secret is not None else [])


@pytest.fixture
def live(tmp_path: Path, committed_audit_events_removed) -> LiveMtls:
    nginx_binary, curl = ensure_tool("nginx"), shutil.which("curl")
    if curl is None:
        pytest.skip("curl is missing")
    with live_mtls(tmp_path, nginx_binary, curl) as running:
        yield running


def test_client_certificate_login_through_nginx(live: LiveMtls, tmp_path: Path) -> None:
    robot = live.issue("robot", ca=ISSUING, profile="client")
    revoked = live.issue("robot-revoked", ca=ISSUING, profile="client")
    unbound = live.issue("robot-unbound", ca=ISSUING, profile="client")
    other = live.issue("other-robot", ca=OTHER_ISSUING, profile="client")
    for credential in (robot, revoked):
        live.manage_json("bind_client_certificate", "--user", "robot", "--certificate", str(credential.id))
    # Another organization's certificate is not bound to this organization's member.
    refused_binding = live.installation.manage("bind_client_certificate", "--user", "robot", "--certificate",
                                               str(other.id))
    assert refused_binding.returncode == 1
    assert "not a member" in refused_binding.stderr
    live.installation.ok("revoke_certificate", revoked.serial, "--ca", ISSUING, "--reason", "keyCompromise")

    # The bound certificate signs in through nginx: a session for robot, in its organization.
    status, body = live.curl_nginx("/auth/mtls", *with_cert(robot))
    assert status == 200, body
    assert body["role"] == "user"
    assert body["organization"] == "mtls"
    token = body["token"]
    status, listed = live.curl_nginx("/api/v1/certificates/", "-H", f"Authorization: Bearer {token}", method="GET")
    assert status == 200
    assert listed["count"] >= 4
    logins = live.query("SELECT actor_username, actor_label, details FROM audit_auditevent WHERE action = %s "
                        "AND outcome = %s", "auth.login", "success")
    assert [(user, label) for user, label, _ in logins] == [("robot", f"cert:{robot.serial}")]

    refusals_before = len(live.login_refusals())
    answers = {
        "revoked": live.curl_nginx("/auth/mtls", *with_cert(revoked)),
        "foreign CA": live.curl_nginx("/auth/mtls", *with_cert(foreign_credential(tmp_path))),
        "unbound": live.curl_nginx("/auth/mtls", *with_cert(unbound)),
        "direct, untrusted address": live.curl_app("/auth/mtls", *forged_headers(robot, PROXY_SECRET)),
        "direct, no secret": live.curl_app("/auth/mtls", *forged_headers(robot, None), source=PROXY_ADDRESS),
        "direct, wrong secret": live.curl_app("/auth/mtls", *forged_headers(robot, PROXY_SECRET[:-1] + "x"),
                                              source=PROXY_ADDRESS),
    }
    # Nothing presented (nginx replaced the forged headers with its own): a 400 like an empty login form.
    for status, body in (live.curl_nginx("/auth/mtls"), live.curl_nginx("/auth/mtls", *forged_headers(robot, "x"))):
        assert status == 400, body
        assert body["error"]["code"] == "no_client_certificate", body
    for case, (status, body) in answers.items():
        assert status == 401, (case, status, body)
        assert body == {"error": {"code": "invalid_credentials", "message": "Invalid credentials."}}, case

    reasons = [details["reason"] for details in live.login_refusals()[refusals_before:]]
    assert all(details["via"] == "client_certificate" for details in live.login_refusals()[refusals_before:])
    assert reasons[0] == "certificate revoked"
    assert reasons[1].startswith("proxy did not verify the certificate (FAILED:"), reasons[1]
    assert reasons[2:] == ["certificate not bound to a member", "proxy headers from an untrusted address",
                           "proxy secret missing", "wrong proxy secret"]
    assert live.query("SELECT COUNT(*) FROM audit_auditevent WHERE action = %s AND outcome = %s",
                      "auth.login", "success") == [(1,)]

    # The session lives only as long as its certificate: revoked now, refused on the next request.
    live.installation.ok("revoke_certificate", robot.serial, "--ca", ISSUING, "--reason", "superseded")
    status, _ = live.curl_nginx("/api/v1/certificates/", "-H", f"Authorization: Bearer {token}", method="GET")
    assert status == 401
    status, _ = live.curl_nginx("/auth/mtls", *with_cert(robot))
    assert status == 401
