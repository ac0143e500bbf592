"""EST (RFC 7030) against a live gunicorn with real `curl` and `openssl`, as the RFC's examples do it.

cacerts is fetched and decoded with `openssl base64 -d | openssl pkcs7 -print_certs`; a key and CSR are
made by `openssl req`, posted base64 by `curl --user … --data-binary @req.b64 -H 'Content-Type:
application/pkcs10'`, and the answer decoded the same way; the certificate must pass `openssl verify`
up to the root and pkilint. No EST client library installs from PyPI or Debian here (the index lists
none), so curl is the client.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.enrollment.live import ISSUING, ROOT, LiveEnrollment, live_enrollment
from tests.judges import pkilint_findings

pytestmark = pytest.mark.django_db(transaction=True)


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def curl() -> str:
    path = shutil.which("curl")
    assert path, "curl is part of the base system"
    return path


def make_request(workdir: Path, name: str, key: str = "key.pem") -> None:
    """`openssl req` the way a device makes its request, then the base64 DER body EST wants (RFC 7030 4.2.1)."""
    run(f"openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {key} -subj /CN={name} "
        f"-addext subjectAltName=DNS:{name} -outform DER -out req.der && openssl base64 -in req.der -out req.b64",
        workdir)


def enroll_with_curl(live: LiveEnrollment, workdir: Path, operation: str, token: dict, out: str) -> str:
    """POST req.b64; the answer's headers; the certificate decoded into `out` (PEM)."""
    headers = run(f"{curl()} -sS --fail-with-body -D headers.txt -o {out}.p7 --user '{token['token_id']}:"
                  f"{token['token']}' --data-binary @req.b64 -H 'Content-Type: application/pkcs10' "
                  f"{live.est(operation)} && cat headers.txt", workdir).stdout
    run(f"openssl base64 -d -in {out}.p7 | openssl pkcs7 -inform DER -print_certs -out {out}", workdir)
    return headers.lower()


def assert_good(live: LiveEnrollment, workdir: Path, certificate: Path, name: str) -> x509.Certificate:
    (workdir / "root.pem").write_bytes(live.ca_pem(ROOT))
    (workdir / "issuing.pem").write_bytes(live.ca_pem(ISSUING))
    verified = run(f"openssl verify -CAfile root.pem -untrusted issuing.pem {certificate.name}", workdir)
    assert verified.stdout.strip().endswith("OK")
    leaf = x509.load_pem_x509_certificates(certificate.read_bytes())
    assert len(leaf) == 1  # RFC 7030 4.2.3: only the certificate that was issued
    sans = leaf[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [name]
    pem = leaf[0].public_bytes(Encoding.PEM)
    assert pkilint_findings("lint_cabf_serverauth_cert", pem, "-t", "DV-FINAL-CERTIFICATE") == []
    assert pkilint_findings("lint_pkix_cert", pem) == []
    return leaf[0]


def test_est_round_trip_with_curl_and_openssl(committed_audit_events_removed, tmp_path: Path) -> None:
    with live_enrollment(tmp_path) as live:
        # 4.1: cacerts, certs-only PKCS#7 in base64
        cacerts = run(f"{curl()} -sS --fail-with-body -D - -o cacerts.p7 {live.est('cacerts')}", tmp_path).stdout
        assert "content-type: application/pkcs7-mime" in cacerts.lower()
        assert "content-transfer-encoding: base64" in cacerts.lower()
        run("openssl base64 -d -in cacerts.p7 | openssl pkcs7 -inform DER -print_certs -out cacerts.pem", tmp_path)
        chain = x509.load_pem_x509_certificates((tmp_path / "cacerts.pem").read_bytes())
        assert {certificate.public_bytes(Encoding.PEM) for certificate in chain} == {
            live.ca_pem(ROOT), live.ca_pem(ISSUING)}
        # 4.5: csrattrs: nothing in particular is asked for
        status = run(f"{curl()} -sS -o /dev/null -w '%{{http_code}}' {live.est('csrattrs')}", tmp_path).stdout
        assert status == "204"
        # 3.2.3: no credential, 401 with a Basic challenge
        make_request(tmp_path, "dev1.fleet.example.com")
        refused = run(f"{curl()} -sS -D - -o /dev/null --data-binary @req.b64 -H 'Content-Type: application/pkcs10' "
                      f"{live.est('simpleenroll')}", tmp_path).stdout.lower()
        assert refused.startswith("http/1.1 401")
        assert 'www-authenticate: basic realm="est"' in refused
        # 4.2.1: simpleenroll with a one-time token as the Basic password
        token = live.new_token()
        headers = enroll_with_curl(live, tmp_path, "simpleenroll", token, "cert.pem")
        assert "content-type: application/pkcs7-mime; smime-type=certs-only" in headers
        assert "content-transfer-encoding: base64" in headers
        first = assert_good(live, tmp_path, tmp_path / "cert.pem", "dev1.fleet.example.com")
        public_key = run("openssl pkey -in key.pem -pubout", tmp_path).stdout.encode()
        assert first.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo) == public_key
        # the token is spent: the same request again is refused, nothing more is issued
        again = run(f"{curl()} -sS -o /dev/null -w '%{{http_code}}' --user 'x:{token['token']}' --data-binary "
                    f"@req.b64 -H 'Content-Type: application/pkcs10' {live.est('simpleenroll')}", tmp_path).stdout
        assert again == "401"
        # 4.2.2: simplereenroll (a new key) with another token, while no client certificate is vouched for
        make_request(tmp_path, "dev1.fleet.example.com", key="key2.pem")
        enroll_with_curl(live, tmp_path, "simplereenroll", live.new_token(), "renewed.pem")
        renewed = assert_good(live, tmp_path, tmp_path / "renewed.pem", "dev1.fleet.example.com")
        assert renewed.serial_number != first.serial_number
        issued = live.query("SELECT c.serial FROM enrollment_enrollmenttoken t"
                            " JOIN certificates_certificate c ON c.id = t.certificate_id")
        assert {int(serial, 16) for (serial,) in issued} == {first.serial_number, renewed.serial_number}
        events = live.query("SELECT action, outcome FROM audit_auditevent WHERE action LIKE 'enrollment%%'")
        assert sorted(events) == sorted([("enrollment_token.create", "success")] * 2
                                        + [("enrollment_token.use", "success")] * 2
                                        + [("enrollment.refuse", "failure")])
