"""A live installation attacked from outside: gunicorn in a subprocess, clients speaking raw HTTP.

`LivePKI` is a real installation (a SQLite file or a throw-away PostgreSQL database, a data
directory) with two organizations, one key per role, a root, an intermediate and two leaves, all
made by `manage.py` as an operator would, served by gunicorn on a loopback port. Tests send what an
insider or an anonymous client would send and then compare `fingerprint()` before and after: a
digest per table of the database and one of the data directory, so "refused, nothing changed" is
shown on the stored state itself, not on a response code.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.certificates.csrs import make_csr
from tests.helpers import PROJECT_DIR
from tests.reliability.installations import (  # noqa: F401 (ROOT_PASSWORD: re-exported for the attack tests)
    ROOT_PASSWORD,
    Installation,
    free_port,
    installation_for,
)

ORGANIZATION, OTHER_ORGANIZATION = "acme", "other"
ROOT_CA, ISSUING_CA, OTHER_ISSUING_CA = "acme-root", "acme-issuing", "other-issuing"
ROLES = ("global-admin", "admin", "manager", "user", "other-admin")
# Columns that a request may legitimately touch without changing what the PKI holds or allows.
VOLATILE_COLUMNS: dict[str, frozenset[str]] = {"organizations_apikey": frozenset({"last_used_at"})}
# Tables that refused requests append to by design (denials are audited, failed attempts counted)
# or that logins fill.
VOLATILE_TABLES = frozenset({"audit_auditevent", "organizations_sessiontoken", "django_session", "ratelimits_counter"})
SERVER_TIMEOUT = 120


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def error_code(self) -> str | None:
        with contextlib.suppress(ValueError, AttributeError):
            return self.json()["error"]["code"]
        return None


@dataclass(frozen=True)
class State:
    """Digests of the stored state: one per database table, one for the data directory."""

    digests: Mapping[str, str]

    def differences(self, other: State) -> list[str]:
        names = sorted(set(self.digests) | set(other.digests))
        return [name for name in names if self.digests.get(name) != other.digests.get(name)]


@dataclass
class LivePKI:
    installation: Installation
    port: int
    directory: Path
    keys: dict[str, str] = field(default_factory=dict)  # role label -> raw API key
    key_ids: dict[str, int] = field(default_factory=dict)
    certificates: dict[str, dict] = field(default_factory=dict)  # "csr-leaf", "p12-leaf" -> issue --json output
    server: subprocess.Popen | None = None

    # ------------------------------------------------------------------ HTTP

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, *, key: str | None = None, token: str | None = None,
                json_body: object = None, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                timeout: float = 60, source_ip: str | None = None) -> Response:
        """One request on a new connection. `key` is a role label (Bearer API key); `token` a raw Bearer.

        `source_ip` (another loopback address, e.g. "127.0.0.7") is the client address the server
        sees, so per-address limits of one test do not spill into the next.
        """
        sent = {"Accept": "application/json", **(headers or {})}
        credential = self.keys[key] if key is not None else token
        if credential is not None:
            sent["Authorization"] = f"Bearer {credential}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                                source_address=(source_ip, 0) if source_ip else None)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Response(response.status, {name.lower(): value for name, value in response.getheaders()},
                            response.read())
        finally:
            connection.close()

    def page_session(self, role: str) -> PageSession:
        """A browser-like session: the HttpOnly cookie from a login, same-origin headers for POSTs."""
        response = self.request("POST", "/auth/session", json_body={"api_key": self.keys[role]})
        assert response.status == 200, response.body
        cookie = response.header("set-cookie") or ""
        return PageSession(self, cookie.split(";", 1)[0])

    def raw_socket(self, timeout: float = 30) -> socket.socket:
        """A plain TCP connection to the server, for half-sent and hostile requests."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    # ------------------------------------------------------------------ operators

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.installation.manage(*args, **env)

    def manage_json(self, *args: str, **env: str) -> dict:
        result = self.manage(*args, "--json", **env)
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return json.loads(result.stdout)

    # ------------------------------------------------------------------ state

    @property
    def data_dir(self) -> Path:
        return self.installation.data_dir

    @property
    def upload_dir(self) -> Path:
        """PKI_UPLOAD_DIR: where the server streams an authorized upload (one per installation here)."""
        return Path(self.installation.env["PKI_UPLOAD_DIR"])

    def fingerprint(self, *, volatile_tables: Iterable[str] = VOLATILE_TABLES) -> State:
        """Digests of every table (but `volatile_tables`) and of the data directory's files."""
        skipped = set(volatile_tables)
        digests = {name: digest for name, digest in table_digests(self.installation.database_url).items()
                   if name not in skipped}
        digests["<data dir>"] = directory_digest(self.data_dir)
        return State(digests)

    def audit_events(self, after_seq: int = 0) -> list[dict]:
        """The audit events after `after_seq`, oldest first, read straight from the database."""
        rows = query(self.installation.database_url,
                     "SELECT seq, action, outcome, actor_username, actor_label, target_type, target_id, details "
                     "FROM audit_auditevent WHERE seq > %s ORDER BY seq", [after_seq])
        names = ("seq", "action", "outcome", "actor_username", "actor_label", "target_type", "target_id", "details")
        events = [dict(zip(names, row, strict=True)) for row in rows]
        for event in events:
            if isinstance(event["details"], str):
                event["details"] = json.loads(event["details"])
        return events

    def audit_head(self) -> int:
        rows = query(self.installation.database_url, "SELECT COALESCE(MAX(seq), 0) FROM audit_auditevent", [])
        return int(rows[0][0])


@dataclass
class PageSession:
    live: LivePKI
    cookie: str

    def request(self, method: str, path: str, *, form: Mapping[str, str] | None = None,
                body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Response:
        sent = {"Cookie": self.cookie, "Accept": "text/html", **(headers or {})}
        if method not in ("GET", "HEAD"):
            # The CSRF policy's script path: same-origin Origin plus X-Requested-With (README, "CSRF").
            sent.setdefault("Origin", self.live.base)
            sent.setdefault("X-Requested-With", "XMLHttpRequest")
        if form is not None:
            from urllib.parse import urlencode

            body = urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return self.live.request(method, path, body=body, headers=sent)


# --------------------------------------------------------------------------- stored state


def query(database_url: str, sql: str, params: list) -> list[tuple]:
    """Run one read on the installation's database from the test process (no Django)."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        try:
            return connection.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute(sql, params).fetchall()


def _table_names(database_url: str) -> list[str]:
    if database_url.startswith("sqlite:///"):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    return [row[0] for row in query(database_url, sql, [])]


def _columns(database_url: str, table: str) -> list[str]:
    if database_url.startswith("sqlite:///"):
        return [row[1] for row in query(database_url, f'PRAGMA table_info("{table}")', [])]
    return [row[0] for row in query(database_url, "SELECT column_name FROM information_schema.columns WHERE "
                                    "table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", [table])]


def table_digests(database_url: str) -> dict[str, str]:
    """SHA-256 of each table's rows (sorted, volatile columns left out), keyed by table name."""
    digests: dict[str, str] = {}
    for table in _table_names(database_url):
        skipped = VOLATILE_COLUMNS.get(table, frozenset())
        columns = [column for column in _columns(database_url, table) if column not in skipped]
        selected = ", ".join(f'"{column}"' for column in columns)
        rows = query(database_url, f'SELECT {selected} FROM "{table}"', [])  # noqa: S608 (names from the catalogue)
        digest = hashlib.sha256()
        for line in sorted(repr(tuple(_comparable(value) for value in row)) for row in rows):
            digest.update(line.encode() + b"\n")
        digests[table] = digest.hexdigest()
    return digests


def _comparable(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview) else value


def directory_digest(directory: Path) -> str:
    """SHA-256 over every regular file's relative path and bytes, in path order."""
    digest = hashlib.sha256()
    if not directory.exists():
        return digest.hexdigest()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# --------------------------------------------------------------------------- building one


def build(installation: Installation, directory: Path) -> LivePKI:
    """Organizations, one key per role, a root, an intermediate per organization and two leaves."""
    live = LivePKI(installation, free_port(), directory)
    for slug in (ORGANIZATION, OTHER_ORGANIZATION):
        live.manage_json("create_organization", "--name", f"{slug.title()} Corp", "--slug", slug)
    members = {"global-admin": ("admin", None), "admin": ("admin", ORGANIZATION), "manager": ("manager", ORGANIZATION),
               "user": ("user", ORGANIZATION), "other-admin": ("admin", OTHER_ORGANIZATION)}
    for label, (role, organization) in members.items():
        where = ["--organization", organization] if organization else []
        created = live.manage_json("create_api_key", "--user", label, "--role", role, *where)
        live.keys[label], live.key_ids[label] = created["key"], created["id"]
    for organization, root, issuing in ((ORGANIZATION, ROOT_CA, ISSUING_CA),
                                        (OTHER_ORGANIZATION, "other-root", OTHER_ISSUING_CA)):
        live.manage_json("init_root_ca", "--organization", organization, "--name", f"{organization} Root CA",
                         "--slug", root, "--key-type", "ec-p256", "--password-env", "ROOT_PASSWORD")
        live.manage_json("create_intermediate_ca", "--root", root, "--name", f"{organization} Issuing CA",
                         "--slug", issuing, "--password-env", "ROOT_PASSWORD")
    csr = directory / "leaf.csr"
    csr.write_bytes(make_csr("leaf.acme.example"))
    live.certificates["csr-leaf"] = live.manage_json("issue_certificate", "--ca", ISSUING_CA, "--profile", "server",
                                                     "--csr", str(csr))
    live.certificates["p12-leaf"] = live.manage_json("issue_certificate", "--ca", ISSUING_CA, "--profile", "client",
                                                     "--common-name", "robot-1", "--san", "DNS:robot-1.acme.example")
    return live


def gunicorn_command(port: int, extra: Iterable[str] = ()) -> list[str]:
    """gunicorn as the README's production command runs it (its config file when there is one)."""
    command = [str(Path(sys.executable).parent / "gunicorn"), "pki_project.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    config = PROJECT_DIR / "pki_project" / "gunicorn.conf.py"
    if config.exists():
        command += ["--config", str(config)]
    return [*command, *extra]


def start(live: LivePKI, extra: Iterable[str] = ()) -> None:
    log = (live.directory / f"gunicorn-{live.port}.log").open("ab")
    live.server = subprocess.Popen(gunicorn_command(live.port, extra), cwd=PROJECT_DIR, env=live.installation.env,
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        assert live.server.poll() is None, f"gunicorn exited: {server_log(live)}"
        with contextlib.suppress(OSError):
            if live.request("GET", "/health", timeout=5).status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer /health in time: {server_log(live)}")


def stop(live: LivePKI) -> None:
    if live.server is None:
        return
    live.server.terminate()
    try:
        live.server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        live.server.kill()
        live.server.wait()
    live.server = None


def server_log(live: LivePKI) -> str:
    with contextlib.suppress(OSError):
        return (live.directory / f"gunicorn-{live.port}.log").read_text(errors="replace")[-4000:]
    return ""


@contextlib.contextmanager
def live_pki(engine: str, directory: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[LivePKI]:
    """A built installation served by gunicorn until the block ends (PostgreSQL: skipped when absent)."""
    with installation_for(engine, directory) as installation:
        installation.env.update(extra_env or {})
        installation.env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        installation.env.setdefault("PKI_UPLOAD_DIR", str(directory / "uploads"))  # not the project's tmp/
        live = build(installation, directory)
        start(live)
        try:
            yield live
        finally:
            stop(live)
