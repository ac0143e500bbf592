"""A live ACME installation for the real clients: gunicorn in a subprocess, pebble-challtestsrv as DNS.

The installation is the test database on PostgreSQL (the pass run with PKI_TEST_DATABASE_URL: gunicorn
connects to the database pytest-django created, so nothing outside it is touched) or a SQLite file in
the test's directory. Organizations and CAs are made by `manage.py` as an operator would, and the
EAB credential by `create_acme_eab`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from tests.acme.challenge_servers import ChallTestSrv, free_port
from tests.conftest import running_on_postgres
from tests.reliability.installations import Installation, environment, gunicorn

ORGANIZATION = "acmelive"
ROOT, ISSUING = "acmelive-root", "acmelive-issuing"


@dataclass
class LiveAcme:
    installation: Installation
    port: int
    challenges: ChallTestSrv
    http_port: int  # where the validator looks for http-01 answers: the client's own server
    directory: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base}/acme/{ISSUING}/directory"

    def manage_json(self, *args: str) -> dict:
        import json

        return json.loads(self.installation.ok(*args, "--json"))

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Read the served database directly (SQLite file or the PostgreSQL test database)."""
        if self.installation.engine == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.installation.database_url.removeprefix("sqlite:///"))) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.installation.database_url) as db:
            return db.execute(sql, params).fetchall()

    def acme_origin(self, serial: int) -> tuple[str, str] | None:
        """(account name, EAB key id) of the ACME order that got the certificate with `serial`."""
        rows = self.query(
            "SELECT a.name, e.key_id, c.serial FROM acme_server_order o"
            " JOIN certificates_certificate c ON c.id = o.certificate_id"
            " JOIN acme_server_account a ON a.id = o.account_id"
            " LEFT JOIN acme_server_externalaccountkey e ON e.id = a.external_key_id")
        return next(((name, key_id) for name, key_id, hex_serial in rows if int(hex_serial, 16) == serial), None)

    def new_eab(self) -> tuple[str, str]:
        created = self.manage_json("create_acme_eab", "--organization", ORGANIZATION)
        return created["key_id"], created["hmac_key"]

    def ca_pem(self, slug: str) -> bytes:
        import urllib.request

        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{self.base}/pki/ca/{slug}.pem", timeout=30) as response:
            return response.read()

    def ocsp_status(self, certificate: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
        """`openssl ocsp` against the live responder, the answer verified up to the root."""
        root, issuing = workdir / "root.pem", workdir / "issuing.pem"
        root.write_bytes(self.ca_pem(ROOT))
        issuing.write_bytes(self.ca_pem(ISSUING))
        return subprocess.run(
            ["openssl", "ocsp", "-issuer", str(issuing), "-cert", str(certificate), "-url",
             f"{self.base}/pki/ocsp/{ISSUING}/", "-CAfile", str(root), "-verify_other", str(issuing)],
            capture_output=True, text=True, timeout=60, check=False)

    def openssl_verify(self, certificate: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
        root, issuing = workdir / "root.pem", workdir / "issuing.pem"
        root.write_bytes(self.ca_pem(ROOT))
        issuing.write_bytes(self.ca_pem(ISSUING))
        return subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted", str(issuing),
                               str(certificate)], capture_output=True, text=True, timeout=60, check=False)


def _database_url(directory: Path) -> tuple[str, str]:
    if running_on_postgres():
        from django.db import connection

        base = os.environ["PKI_TEST_DATABASE_URL"].rsplit("/", 1)[0]
        return "postgres", f"{base}/{connection.settings_dict['NAME']}"
    return "sqlite", f"sqlite:///{directory / 'pki.db'}"


@contextlib.contextmanager
def live_acme(directory: Path) -> Iterator[LiveAcme]:
    """Needs the `transactional_db` fixture on PostgreSQL (its database is the one served here)."""
    challenges = ChallTestSrv().start()
    try:
        engine, url = _database_url(directory)
        port, http_port = free_port(), free_port()
        data_dir = directory / "data"
        env = environment(url, data_dir, PKI_ACME_DNS_RESOLVER=challenges.resolver, PKI_ACME_HTTP_PORT=str(http_port),
                          PKI_ACME_TLS_PORT=str(challenges.tls_alpn_port), PKI_ACME_VALIDATION_TIMEOUT="15",
                          PKI_PUBLIC_RATE_PER_IP="0")
        env["PKI_BASE_URL"] = f"http://127.0.0.1:{port}"  # the CRL and OCSP URLs in what it issues
        installation = Installation(engine, url, data_dir, env)
        installation.ok("migrate", "--noinput", "-v", "0")
        installation.ok("create_organization", "--name", "ACME Live", "--slug", ORGANIZATION)
        # Judged as CA/B-style TLS certificates: the installation opts its server profile in to the CA/B
        # Forum policy (with a private one, RFC 7229's test OID), which the built-ins do not assert by default.
        installation.ok("update_profile", "server", "--cabf-policy", "--policy-oids", "1.3.6.1.5.5.7.13.1")
        installation.ok("init_root_ca", "--organization", ORGANIZATION, "--name", "ACME Live Root", "--slug", ROOT,
                        "--key-type", "ec-p256", "--password-env", "ROOT_PASSWORD")
        installation.ok("create_intermediate_ca", "--root", ROOT, "--name", "ACME Live Issuing", "--slug", ISSUING,
                        "--password-env", "ROOT_PASSWORD")
        with gunicorn(env, port, workers=2):
            yield LiveAcme(installation, port, challenges, http_port, directory)
    finally:
        challenges.stop()


def load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())
