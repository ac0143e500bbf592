"""A live installation for the enrollment tests: gunicorn in a subprocess, set up by `manage.py` as an operator would.

The database is the test database on PostgreSQL (the pass with PKI_TEST_DATABASE_URL: gunicorn connects
to the database pytest-django created) or a SQLite file in the test's directory. Two workers of four
threads each, so parallel requests really meet in the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.acme.challenge_servers import free_port
from tests.conftest import running_on_postgres
from tests.reliability.installations import Installation, environment, gunicorn

ORGANIZATION = "estlive"
ROOT, ISSUING = "estlive-root", "estlive-issuing"
FLEET = "DNS:*.fleet.example.com"


@dataclass
class LiveEnrollment:
    installation: Installation
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def est(self, operation: str, ca: str = ISSUING) -> str:
        return f"{self.base}/.well-known/est/{ca}/{operation}"

    def new_token(self, *patterns: str, profile: str = "server") -> dict:
        arguments = [item for pattern in (patterns or (FLEET,)) for item in ("--san-pattern", pattern)]
        return json.loads(self.installation.ok("create_enrollment_token", "--organization", ORGANIZATION, "--ca",
                                               ISSUING, "--profile", profile, *arguments, "--json"))

    def ca_pem(self, slug: str) -> bytes:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{self.base}/pki/ca/{slug}.pem", timeout=30) as response:
            return response.read()

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Read the served database directly (SQLite file or the PostgreSQL test database)."""
        if self.installation.engine == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.installation.database_url.removeprefix("sqlite:///"))) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.installation.database_url) as db:
            return db.execute(sql, params).fetchall()


def _database_url(directory: Path) -> tuple[str, str]:
    if running_on_postgres():
        from django.db import connection

        base = os.environ["PKI_TEST_DATABASE_URL"].rsplit("/", 1)[0]
        return "postgres", f"{base}/{connection.settings_dict['NAME']}"
    return "sqlite", f"sqlite:///{directory / 'pki.db'}"


@contextlib.contextmanager
def live_enrollment(directory: Path) -> Iterator[LiveEnrollment]:
    """Needs the `transactional_db` fixture on PostgreSQL (its database is the one served here)."""
    engine, url = _database_url(directory)
    port = free_port()
    data_dir = directory / "data"
    # A public-looking base URL: pkilint flags 127.0.0.1 in the CRL and OCSP URLs as internal names.
    env = environment(url, data_dir, PKI_PUBLIC_RATE_PER_IP="0")
    env["PKI_BASE_URL"] = "http://pki.example.com"
    installation = Installation(engine, url, data_dir, env)
    installation.ok("migrate", "--noinput", "-v", "0")
    installation.ok("create_organization", "--name", "EST Live", "--slug", ORGANIZATION)
    # Judged as CA/B-style TLS certificates (as the ACME installation is): the server profile opts in.
    installation.ok("update_profile", "server", "--cabf-policy", "--policy-oids", "1.3.6.1.5.5.7.13.1")
    installation.ok("init_root_ca", "--organization", ORGANIZATION, "--name", "EST Live Root", "--slug", ROOT,
                    "--key-type", "ec-p256", "--password-env", "ROOT_PASSWORD")
    installation.ok("create_intermediate_ca", "--root", ROOT, "--name", "EST Live Issuing", "--slug", ISSUING,
                    "--password-env", "ROOT_PASSWORD")
    with gunicorn(env, port, workers=2, extra=["--threads", "4"]):
        yield LiveEnrollment(installation, port)
