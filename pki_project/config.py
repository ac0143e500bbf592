"""Start-up configuration: read the environment (or `.env`) and refuse weak secrets.

This module is imported by `settings.py`, `manage.py` and `wsgi.py` before Django
is set up, so it must not import Django. A missing or weak required secret raises
`ConfigError` whose message is exactly one line naming the variable; the entry
points print that line and exit, so nothing half-starts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_SECRET_LENGTH = 32
MIN_SALT_LENGTH = 16
MIN_SALT_DISTINCT_CHARACTERS = 8

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A required setting is missing or too weak to start safely."""


def _require_secret(environ: os._Environ[str] | dict[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set: it is required (at least {MIN_SECRET_LENGTH} characters).")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} is too short: it must be at least {MIN_SECRET_LENGTH} characters (it has {len(value)})."
        )
    return value


def _require_salt(environ: os._Environ[str] | dict[str, str], name: str) -> str:
    """The salt must carry at least 16 bytes: long enough and not a repeated character."""
    value = environ.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set: it is required (at least {MIN_SALT_LENGTH} random characters).")
    if len(value.encode()) < MIN_SALT_LENGTH or len(set(value)) < MIN_SALT_DISTINCT_CHARACTERS:
        raise ConfigError(
            f"{name} is too weak: it must be at least {MIN_SALT_LENGTH} bytes of random characters."
        )
    return value


def validate_required_secrets(environ: os._Environ[str] | dict[str, str] | None = None) -> None:
    """Raise `ConfigError` (one line, naming the variable) unless every required secret is sound."""
    environ = os.environ if environ is None else environ
    jwt_secret = _require_secret(environ, "PKI_JWT_SECRET")
    encryption_key = _require_secret(environ, "PKI_ENCRYPTION_KEY")
    _require_salt(environ, "PKI_ENCRYPTION_SALT")
    if jwt_secret == encryption_key:
        raise ConfigError("PKI_JWT_SECRET must differ from PKI_ENCRYPTION_KEY.")


SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
DEFAULT_DATABASE_DIR = BASE_DIR / "database"


def make_sqlite_database_private(path: Path) -> None:
    """The SQLite database file 0600 and its directory 0700, before SQLite first opens the file.

    SQLite creates a new database 0644 (less the umask) and gives its -wal, -shm and -journal
    files the mode of the database file. So the file is created here, empty and 0600 (SQLite
    takes an empty file for an empty database), and the others follow. An existing database
    file (and companions) of this user wider than 0600 is narrowed; the directory is made
    0700 when it is created here, or when it is the default `database/`: a directory given in
    DATABASE_URL may be shared (/var/lib, /tmp) and is left as it is.
    """
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif directory.resolve() == DEFAULT_DATABASE_DIR.resolve():
        _narrow(directory, 0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS)):
        _narrow(candidate, 0o600)


def _narrow(path: Path, mode: int) -> None:
    """chmod `path` to `mode` if it is this user's and more open than that (anything else is left alone)."""
    try:
        status = path.stat()
        if status.st_uid == os.geteuid() and status.st_mode & 0o777 & ~mode:
            path.chmod(mode)
    except OSError:
        pass


def load_dotenv(path: Path | None = None) -> None:
    """Read `.env` (or `PKI_ENV_FILE`) into the environment without overriding variables already set."""
    import environ  # django-environ does not import Django at module level

    env_file = path or Path(os.environ.get("PKI_ENV_FILE", BASE_DIR / ".env"))
    if env_file.is_file():
        environ.Env.read_env(str(env_file), overwrite=False)


DNS_PORT = 53
MIN_ACME_VALIDATION_TIMEOUT = 0.1
MAX_ACME_VALIDATION_TIMEOUT = 300.0


@dataclass(frozen=True)
class AcmeValidationConfig:
    """Where and how long the ACME challenge validator (acme_server.validation) looks."""

    http_port: int = 80  # http-01, RFC 8555 §8.3
    tls_port: int = 443  # tls-alpn-01, RFC 8737 §3
    dns_resolver: str = ""  # "address:port" of the resolver for dns-01 and host names; "": the system's
    timeout: float = 10.0  # seconds for one whole validation, every step included


def parse_resolver_address(text: str) -> tuple[str, int]:
    """`10.0.0.53`, `10.0.0.53:5353`, `fd00::53` or `[fd00::53]:5353` as (address, port); ValueError otherwise.

    Only an IP address: the resolver is what turns names into addresses, so it cannot be a name itself.
    """
    host, port = text, DNS_PORT
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(text)
        port = _port(rest[1:]) if rest else DNS_PORT
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text)
    return str(ipaddress.ip_address(host)), port


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(text)
    return int(text)


def acme_validation_config(environ: Mapping[str, str] | None = None) -> AcmeValidationConfig:
    """PKI_ACME_HTTP_PORT, PKI_ACME_TLS_PORT, PKI_ACME_DNS_RESOLVER and PKI_ACME_VALIDATION_TIMEOUT, checked.

    A bad value raises `ConfigError` with one line naming the variable (start-up stops on it).
    """
    environ = os.environ if environ is None else environ
    defaults = AcmeValidationConfig()
    ports = {}
    for name, default in (("PKI_ACME_HTTP_PORT", defaults.http_port), ("PKI_ACME_TLS_PORT", defaults.tls_port)):
        text = environ.get(name, "").strip()
        try:
            ports[name] = _port(text) if text else default
        except ValueError:
            raise ConfigError(f"{name} must be a TCP port from 1 to 65535 (it is {text!r}).") from None
    resolver = environ.get("PKI_ACME_DNS_RESOLVER", "").strip()
    if resolver:
        try:
            parse_resolver_address(resolver)
        except ValueError:
            raise ConfigError(
                "PKI_ACME_DNS_RESOLVER must be an IP address with an optional port, e.g. 10.0.0.53:53 or "
                f"[fd00::53]:53, or empty for the system resolver (it is {resolver!r})."
            ) from None
    timeout_text = environ.get("PKI_ACME_VALIDATION_TIMEOUT", "").strip()
    try:
        timeout = float(timeout_text) if timeout_text else defaults.timeout
        if not MIN_ACME_VALIDATION_TIMEOUT <= timeout <= MAX_ACME_VALIDATION_TIMEOUT:
            raise ValueError(timeout_text)
    except ValueError:
        raise ConfigError(
            f"PKI_ACME_VALIDATION_TIMEOUT must be a number of seconds from {MIN_ACME_VALIDATION_TIMEOUT:g} to "
            f"{MAX_ACME_VALIDATION_TIMEOUT:g} (it is {timeout_text!r})."
        ) from None
    return AcmeValidationConfig(http_port=ports["PKI_ACME_HTTP_PORT"], tls_port=ports["PKI_ACME_TLS_PORT"],
                                dns_resolver=resolver, timeout=timeout)


def exit_on_config_error() -> None:
    """Entry-point guard: load `.env`, validate, and exit with one line on failure."""
    load_dotenv()
    try:
        validate_required_secrets()
        acme_validation_config()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
