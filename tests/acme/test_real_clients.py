"""Debian's certbot and lego against a live gunicorn: EAB, http-01, a dns-01 wildcard, renewal, revocation.

The validator resolves names with pebble-challtestsrv's DNS (every A query answers 127.0.0.1) and
fetches http-01 answers from the client's own server (certbot --standalone, lego --http); lego's
dns-01 answers are put into challtestsrv by an `--dns exec` script. Each certificate must pass
`openssl verify` up to the root and pkilint (apart from its internal-name checks: the CRL and OCSP
URLs point at 127.0.0.1), and after revocation `openssl ocsp` must say revoked.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.acme.live import LiveAcme, live_acme, load_chain
from tests.debian import ensure_tool
from tests.judges import pkilint_findings

pytestmark = pytest.mark.django_db(transaction=True)
CLIENT_TIMEOUT = 600  # certbot renew took up to 300 s on a loaded 2-core machine


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False, **kwargs)
    assert result.returncode == 0, f"{command[0]} {command[1]} exited {result.returncode}:\n{result.stdout}\n" \
                                   f"{result.stderr[-4000:]}"
    return result


def assert_good_certificate(live: LiveAcme, path: Path, workdir: Path, names: set[str], kid: str
                            ) -> x509.Certificate:
    verified = live.openssl_verify(path, workdir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    leaf = load_chain(path)[0]
    sans = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
               .get_values_for_type(x509.DNSName))
    assert sans == names
    pem = leaf.public_bytes(Encoding.PEM)
    findings = [line for line in pkilint_findings("lint_cabf_serverauth_cert", pem, "-t", "DV-FINAL-CERTIFICATE")
                if "internal" not in line.lower()]
    assert findings == [], "\n".join(findings)
    if not any(name.startswith("*.") for name in names):  # its generic dNSName syntax check knows no wildcards
        assert pkilint_findings("lint_pkix_cert", pem) == []
    origin = live.acme_origin(leaf.serial_number)
    assert origin is not None, "the certificate is linked to its ACME order and account"
    assert origin[1] == kid
    return leaf


def assert_revoked_in_ocsp(live: LiveAcme, path: Path, workdir: Path) -> None:
    leaf_only = workdir / "leaf-only.pem"
    leaf_only.write_bytes(load_chain(path)[0].public_bytes(Encoding.PEM))
    answer = live.ocsp_status(leaf_only, workdir)
    assert "Response verify OK" in answer.stderr, answer.stdout + answer.stderr
    assert ": revoked" in answer.stdout, answer.stdout


def test_certbot_issues_renews_and_revokes(committed_audit_events_removed, tmp_path: Path) -> None:
    certbot = ensure_tool("certbot")
    with live_acme(tmp_path) as live:
        kid, hmac = live.new_eab()
        config = tmp_path / "certbot"
        common = ["--config-dir", str(config), "--work-dir", str(config / "work"), "--logs-dir", str(config / "logs"),
                  "--non-interactive", "--server", live.directory_url]
        env = {**os.environ, "REQUESTS_CA_BUNDLE": "", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        run([certbot, "certonly", *common, "--agree-tos", "-m", "ops@example.com", "--no-eff-email",
             "--eab-kid", kid, "--eab-hmac-key", hmac, "--standalone", "--http-01-port", str(live.http_port),
             "--http-01-address", "127.0.0.1", "-d", "www.example.com", "-d", "api.example.com",
             "--key-type", "ecdsa"], env=env)
        live_dir = config / "live" / "www.example.com"
        first = assert_good_certificate(live, live_dir / "fullchain.pem", tmp_path,
                                        {"www.example.com", "api.example.com"}, kid)
        run([certbot, "renew", *common, "--force-renewal"], env=env)
        renewed = assert_good_certificate(live, live_dir / "fullchain.pem", tmp_path,
                                          {"www.example.com", "api.example.com"}, kid)
        assert renewed.serial_number != first.serial_number
        run([certbot, "revoke", *common, "--cert-name", "www.example.com", "--reason", "superseded",
             "--no-delete-after-revoke"], env=env)
        assert_revoked_in_ocsp(live, live_dir / "fullchain.pem", tmp_path)


def _dns_exec_script(live: LiveAcme, directory: Path) -> Path:
    """lego's `--dns exec` hook: `present|cleanup FQDN VALUE` becomes a challtestsrv set-txt/clear-txt call."""
    script = directory / "dns-hook.py"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, urllib.request\n"
        "action, fqdn, value = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "endpoint, body = ('set-txt', {'host': fqdn, 'value': value}) if action == 'present' else "
        "('clear-txt', {'host': fqdn})\n"
        f"url = 'http://127.0.0.1:{live.challenges.management_port}/' + endpoint\n"
        "request = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST')\n"
        "urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10).read()\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_lego_http01_and_wildcard_dns01_renew_and_revoke(committed_audit_events_removed, tmp_path: Path) -> None:
    lego = ensure_tool("lego")
    with live_acme(tmp_path) as live:
        kid, hmac = live.new_eab()
        path = tmp_path / "lego"
        common = ["--server", live.directory_url, "--path", str(path), "--accept-tos", "--email", "ops@example.com",
                  "--eab", "--kid", kid, "--hmac", hmac, "--key-type", "ec256"]
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
               "EXEC_PATH": str(_dns_exec_script(live, tmp_path)), "EXEC_PROPAGATION_TIMEOUT": "30",
               "EXEC_POLLING_INTERVAL": "1"}
        http = ["--http", "--http.port", f"127.0.0.1:{live.http_port}"]
        run([lego, *common, "--domains", "web.example.com", *http, "run"], env=env)
        cert = path / "certificates" / "web.example.com.crt"
        first = assert_good_certificate(live, cert, tmp_path, {"web.example.com"}, kid)
        dns = ["--dns", "exec", "--dns.resolvers", live.challenges.resolver, "--dns.disable-cp"]
        run([lego, *common, "--domains", "*.example.com", *dns, "run"], env=env)
        wildcard = path / "certificates" / "_.example.com.crt"
        assert_good_certificate(live, wildcard, tmp_path, {"*.example.com"}, kid)
        run([lego, *common, "--domains", "web.example.com", *http, "renew", "--days", "3650", "--no-random-sleep"],
            env=env)
        renewed = assert_good_certificate(live, cert, tmp_path, {"web.example.com"}, kid)
        assert renewed.serial_number != first.serial_number
        kept = tmp_path / "renewed.pem"
        kept.write_bytes(cert.read_bytes())  # lego moves a revoked certificate's files to its archive
        run([lego, *common, "--domains", "web.example.com", "revoke", "--reason", "4"], env=env)
        assert_revoked_in_ocsp(live, kept, tmp_path)
        assert live.query("SELECT count(*) FROM acme_server_order WHERE status = 'valid'") == [(3,)]
