"""Against a real server: gunicorn (2 workers) on a loopback port, a migrated SQLite file, openssl as the client.

The hierarchy and the leaf are made with `manage.py` commands, as an operator would; PKI_BASE_URL points
at the server, so the CRL distribution points and AIA in the certificates lead openssl back to it.
(pkilint is not run on these artifacts: it flags the 127.0.0.1 URLs as internal names. The same
artifacts with a public-looking base URL are linted in test_crls.py and test_ocsp_responder.py.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.certificates.csrs import make_csr
from tests.helpers import PROJECT_DIR, clean_environment, run_manage
from tests.judges import pkilint_findings

ROOT_PASSWORD = "live server root password 42"
GUNICORN = PROJECT_DIR / ".venv" / "bin" / "gunicorn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LivePKI:
    base: str
    env: dict[str, str]
    directory: Path
    leaf_serial: str

    def path(self, name: str) -> Path:
        return self.directory / name

    def fetch(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:  # noqa: S310 (our own server)
            return response.read()


def manage(env: dict[str, str], *args: str) -> dict:
    result = run_manage(*args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout) if "--json" in args else {}


def wait_until_serving(base: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited: {server.stderr.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not answer in time")


@pytest.fixture
def live_pki(tmp_path: Path) -> Iterator[LivePKI]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"), PKI_BASE_URL=base,
        PKI_COOKIE_SECURE="false", PKI_ENV_FILE=str(tmp_path / "none.env"), PKI_ROOT_KDF_LOG2_N="12",
        LIVE_ROOT_PASSWORD=ROOT_PASSWORD,
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "create_organization", "--name", "Live Corp", "--slug", "live")
    manage(env, "init_root_ca", "--organization", "live", "--name", "Live Root CA", "--slug", "live-root",
           "--key-type", "ec-p256", "--password-env", "LIVE_ROOT_PASSWORD", "--json")
    manage(env, "create_intermediate_ca", "--root", "live-root", "--name", "Live Issuing CA", "--slug",
           "live-issuing", "--password-env", "LIVE_ROOT_PASSWORD", "--json")
    csr = tmp_path / "leaf.csr"
    csr.write_bytes(make_csr("live.example.com"))
    issued = manage(env, "issue_certificate", "--ca", "live-issuing", "--profile", "server", "--csr", str(csr),
                    "--out", str(tmp_path), "--json")
    os.replace(issued["certificate"], tmp_path / "leaf.pem")
    server = subprocess.Popen(
        [str(GUNICORN), "pki_project.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(base, server)
        live = LivePKI(base, env, tmp_path, issued["serial"])
        live.path("root.pem").write_bytes(live.fetch("/pki/ca/live-root.pem"))
        live.path("inter.pem").write_bytes(live.fetch("/pki/ca/live-issuing.pem"))
        yield live
    finally:
        server.terminate()
        server.wait(timeout=30)


def openssl(*args: str | Path) -> str:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False)
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def openssl_ocsp(live: LivePKI, *extra: str, respout: str = "response.der") -> str:
    # A digest option (-sha256) must come before -cert: it sets the CertID hash of what follows.
    return openssl("ocsp", "-issuer", live.path("inter.pem"), *extra, "-cert", live.path("leaf.pem"),
                   "-url", f"{live.base}/pki/ocsp/live-issuing/", "-CAfile", live.path("root.pem"),
                   "-verify_other", live.path("inter.pem"), "-respout", live.path(respout))


def openssl_verify_downloading_crls(live: LivePKI, check: str) -> str:
    """-crl_download follows the CRL distribution points; -crl_check_all also wants the root's own
    CRL, which no certificate points at (a trust anchor has no CDP): it is fetched and handed over."""
    live.path("root-crl.pem").write_bytes(live.fetch("/pki/crl/live-root.pem"))
    extra = ["-CRLfile", live.path("root-crl.pem")] if check == "-crl_check_all" else []
    return openssl("verify", check, "-crl_download", *extra, "-CAfile", live.path("root.pem"),
                   "-untrusted", live.path("inter.pem"), live.path("leaf.pem"))


@pytest.mark.slow
def test_openssl_against_the_live_server_before_and_after_revocation(live_pki: LivePKI):
    leaf = str(live_pki.path("leaf.pem"))
    for digest in ([], ["-sha256"]):
        output = openssl_ocsp(live_pki, *digest)
        assert "Response verify OK" in output, output
        assert f"{leaf}: good" in output, output
    assert pkilint_findings("lint_ocsp_response", live_pki.path("response.der").read_bytes()) == []
    for check in ("-crl_check", "-crl_check_all"):
        output = openssl_verify_downloading_crls(live_pki, check)
        assert output.startswith("exit 0"), output
        assert f"{leaf}: OK" in output, output

    manage(live_pki.env, "revoke_certificate", live_pki.leaf_serial, "--ca", "live-issuing",
           "--reason", "keyCompromise")

    for digest in ([], ["-sha256"]):
        output = openssl_ocsp(live_pki, *digest, respout="revoked.der")
        assert "Response verify OK" in output, output
        assert f"{leaf}: revoked" in output, output
        assert "Reason: keyCompromise" in output, output
    assert pkilint_findings("lint_ocsp_response", live_pki.path("revoked.der").read_bytes()) == []
    for check in ("-crl_check", "-crl_check_all"):
        output = openssl_verify_downloading_crls(live_pki, check)
        assert not output.startswith("exit 0"), output
        assert "certificate revoked" in output, output

    # The intermediate, asked at the root's responder: a pre-signed answer from when the root was unlocked.
    output = openssl("ocsp", "-issuer", live_pki.path("root.pem"), "-cert", live_pki.path("inter.pem"),
                     "-url", f"{live_pki.base}/pki/ocsp/live-root/", "-CAfile", live_pki.path("root.pem"),
                     "-no_nonce")
    assert "Response verify OK" in output, output
    assert f"{live_pki.path('inter.pem')}: good" in output, output
    garbage = urllib.request.Request(  # noqa: S310 (our own server)
        f"{live_pki.base}/pki/ocsp/live-issuing/", data=b"garbage", method="POST",
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(garbage, timeout=30) as response:  # noqa: S310
        assert response.status == 200
        assert response.read() == b"\x30\x03\x0a\x01\x01"  # OCSPResponse { malformedRequest (1) }
