"""A live installation behind a real nginx that terminates TLS and verifies client certificates.

gunicorn serves the project on 127.0.0.1; nginx listens on another loopback port with a server
certificate this CA issued, asks for a client certificate (`ssl_verify_client optional`, trusting
this PKI's CA bundle) and hands the verdict on in the proxy headers with the shared secret. nginx
connects to the app from 127.0.0.2 (`proxy_bind`), the only address in PKI_MTLS_TRUSTED_PROXIES, so
a request sent straight to the app from 127.0.0.1 is from an untrusted address. Everything lives in
the test's directory: nginx's configuration, pid, logs and temporary files.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import running_on_postgres
from tests.reliability.installations import Installation, environment, free_port, gunicorn

ORGANIZATION, OTHER = "mtls", "mtls-other"
ROOT, ISSUING, OTHER_ROOT, OTHER_ISSUING = "mtls-root", "mtls-issuing", "mtls-other-root", "mtls-other-issuing"
PROXY_SECRET = "nginx-proxy-secret-0123456789abcdefghijklmnop"
PROXY_ADDRESS = "127.0.0.2"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {dir}/server-chain.pem;
        ssl_certificate_key {dir}/server.key;
        ssl_client_certificate {dir}/ca-bundle.pem;
        ssl_verify_client optional;
        ssl_verify_depth 3;
        # A certificate nginx could not verify still reaches the app, as FAILED:<reason>, to be audited.
        error_page 495 = @client_certificate_refused;
        location / {{
{proxy}
        }}
        location @client_certificate_refused {{
{proxy}
        }}
    }}
}}
"""

PROXY = """            proxy_pass http://127.0.0.1:{app_port};
            proxy_bind {proxy_address};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-PKI-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header X-PKI-Client-Verify $ssl_client_verify;
            proxy_set_header X-PKI-Proxy-Secret "{secret}";"""


@dataclass
class Credential:
    certificate: Path
    key: Path
    id: int = 0
    serial: str = ""


@dataclass
class LiveMtls:
    installation: Installation
    directory: Path
    app_port: int
    nginx_port: int
    curl: str
    keys: dict[str, str] = field(default_factory=dict)

    def manage_json(self, *args: str) -> dict:
        return json.loads(self.installation.ok(*args, "--json"))

    def curl_nginx(self, path: str, *args: str, method: str = "POST") -> tuple[int, dict]:
        """curl through nginx over TLS, verifying nginx's certificate up to this PKI's root."""
        return self._curl(f"https://localhost:{self.nginx_port}{path}", "--cacert", str(self.directory / "root.pem"),
                          "-X", method, *args)

    def curl_app(self, path: str, *args: str, source: str = "127.0.0.1") -> tuple[int, dict]:
        """curl straight to the app (plain HTTP), bypassing nginx, from `source`."""
        return self._curl(f"http://127.0.0.1:{self.app_port}{path}", "--interface", source, "-X", "POST", *args)

    def _curl(self, url: str, *args: str) -> tuple[int, dict]:
        result = subprocess.run([self.curl, "-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", *args, url],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"curl failed: {result.stderr}"
        body, _, status = result.stdout.rpartition("\n")
        return int(status), json.loads(body) if body.strip().startswith("{") else {"raw": body}

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Read the served database (SQLite file or the PostgreSQL test database)."""
        if self.installation.engine == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.installation.database_url.removeprefix("sqlite:///"))) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.installation.database_url) as db:
            return db.execute(sql, params).fetchall()

    def login_refusals(self) -> list[dict]:
        rows = self.query("SELECT details FROM audit_auditevent WHERE action = %s AND outcome = %s ORDER BY seq",
                          "auth.login", "failure")
        return [json.loads(details) if isinstance(details, str) else details for (details,) in rows]

    def issue(self, name: str, *, ca: str, profile: str, sans: tuple[str, ...] = ()) -> Credential:
        """A key made here and a certificate for it from the live CA (`issue_certificate --csr --out`)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        csr = builder.sign(key, hashes.SHA256())
        csr_path, key_path = self.directory / f"{name}.csr", self.directory / f"{name}.key"
        csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        san_args = [argument for san in sans for argument in ("--san", san)]
        issued = self.manage_json("issue_certificate", "--ca", ca, "--profile", profile, "--csr", str(csr_path),
                                  *san_args, "--out", str(self.directory / "issued"))
        return Credential(Path(issued["certificate"]), key_path, issued["id"], issued["serial"])


def _database_url(directory: Path) -> tuple[str, str]:
    if running_on_postgres():
        from django.db import connection

        base = os.environ["PKI_TEST_DATABASE_URL"].rsplit("/", 1)[0]
        return "postgres", f"{base}/{connection.settings_dict['NAME']}"
    return "sqlite", f"sqlite:///{directory / 'pki.db'}"


def _build(live: LiveMtls) -> None:
    """Two organizations with a root and an issuing CA each, members with API keys, nginx's files."""
    for slug in (ORGANIZATION, OTHER):
        live.manage_json("create_organization", "--name", f"{slug} corp", "--slug", slug)
    for label, role, organization in (("admin", "admin", ORGANIZATION), ("robot", "user", ORGANIZATION),
                                      ("other-robot", "user", OTHER)):
        live.keys[label] = live.manage_json("create_api_key", "--user", label, "--role", role,
                                            "--organization", organization)["key"]
    for organization, root, issuing in ((ORGANIZATION, ROOT, ISSUING), (OTHER, OTHER_ROOT, OTHER_ISSUING)):
        live.manage_json("init_root_ca", "--organization", organization, "--name", f"{organization} Root",
                         "--slug", root, "--key-type", "ec-p256", "--password-env", "ROOT_PASSWORD")
        live.manage_json("create_intermediate_ca", "--root", root, "--name", f"{organization} Issuing",
                         "--slug", issuing, "--password-env", "ROOT_PASSWORD")
    pems = {slug: _ca_pem(live, slug) for slug in (ROOT, ISSUING)}
    (live.directory / "root.pem").write_text(pems[ROOT])
    (live.directory / "ca-bundle.pem").write_text(pems[ROOT] + pems[ISSUING])  # this PKI's CA bundle
    server = live.issue("localhost", ca=ISSUING, profile="server", sans=("DNS:localhost",))
    (live.directory / "server-chain.pem").write_text(server.certificate.read_text() + pems[ISSUING])
    server.key.rename(live.directory / "server.key")


def _ca_pem(live: LiveMtls, slug: str) -> str:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{live.app_port}/pki/ca/{slug}.pem", timeout=30) as response:
        return response.read().decode()


@contextlib.contextmanager
def nginx(live: LiveMtls, binary: str) -> Iterator[subprocess.Popen]:
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (live.directory / name).mkdir(exist_ok=True)
    proxy = PROXY.format(app_port=live.app_port, proxy_address=PROXY_ADDRESS, secret=PROXY_SECRET)
    conf = live.directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=live.directory, port=live.nginx_port, proxy=proxy))
    tested = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(live.directory)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert tested.returncode == 0, tested.stderr
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(live.directory)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(live.nginx_port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited {process.returncode}: {process.stderr.read()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise AssertionError("nginx did not start listening")


@contextlib.contextmanager
def live_mtls(directory: Path, nginx_binary: str, curl: str) -> Iterator[LiveMtls]:
    """Needs the `transactional_db` fixture on PostgreSQL (its database is the one served here)."""
    engine, url = _database_url(directory)
    app_port, nginx_port = free_port(), free_port()
    data_dir = directory / "data"
    env = environment(url, data_dir, PKI_PUBLIC_RATE_PER_IP="0", PKI_MTLS_PROXY_SECRET=PROXY_SECRET,
                      PKI_MTLS_TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32", PKI_BEHIND_TLS_PROXY="true")
    env["PKI_BASE_URL"] = f"http://127.0.0.1:{app_port}"
    installation = Installation(engine, url, data_dir, env)
    installation.ok("migrate", "--noinput", "-v", "0")
    live = LiveMtls(installation, directory, app_port, nginx_port, curl)
    with gunicorn(env, app_port, workers=2):
        _build(live)
        with nginx(live, nginx_binary):
            yield live
