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
    ocsp_response_validity(environ)  # bounds the BR sets, refused at start like a weak secret
    crl_full_interval_hours(environ)
    pkcs11_module(environ)
    pkcs11_pin_file(environ)


#: BR 4.9.10: an OCSP answer about a subscriber certificate is valid (nextUpdate - thisUpdate)
#: at least eight hours and at most ten days.
MIN_OCSP_RESPONSE_VALIDITY = 8 * 3600
MAX_OCSP_RESPONSE_VALIDITY = 10 * 86400
DEFAULT_OCSP_RESPONSE_VALIDITY = 86400


def ocsp_response_validity(environ: os._Environ[str] | dict[str, str] | None = None) -> int:
    """`PKI_OCSP_RESPONSE_VALIDITY` in seconds (default a day), within BR 4.9.10's 8 hours to 10 days."""
    environ = os.environ if environ is None else environ
    text = environ.get("PKI_OCSP_RESPONSE_VALIDITY", "").strip()
    if not text:
        return DEFAULT_OCSP_RESPONSE_VALIDITY
    if not text.isdigit() or not MIN_OCSP_RESPONSE_VALIDITY <= int(text) <= MAX_OCSP_RESPONSE_VALIDITY:
        raise ConfigError(
            f"PKI_OCSP_RESPONSE_VALIDITY must be a number of seconds from {MIN_OCSP_RESPONSE_VALIDITY} (8 hours) "
            f"to {MAX_OCSP_RESPONSE_VALIDITY} (10 days), BR 4.9.10 (it is {text!r})."
        )
    return int(text)


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


@dataclass(frozen=True)
class NotificationConfig:
    """How expiry notices are delivered (certificates.services.notifications)."""

    timeout: int = 10  # seconds per SMTP or webhook delivery
    max_attempts: int = 5
    retry_minutes: int = 15  # before the first retry; doubles after each failure


NOTIFICATION_BOUNDS = {"PKI_NOTIFY_TIMEOUT": (1, 120), "PKI_NOTIFY_MAX_ATTEMPTS": (1, 50),
                       "PKI_NOTIFY_RETRY_MINUTES": (1, 1440)}


def notification_config(environ: Mapping[str, str] | None = None) -> NotificationConfig:
    """PKI_NOTIFY_TIMEOUT, PKI_NOTIFY_MAX_ATTEMPTS and PKI_NOTIFY_RETRY_MINUTES, checked (`ConfigError` names one)."""
    environ = os.environ if environ is None else environ
    defaults = NotificationConfig()
    values = {}
    for name, default in (("PKI_NOTIFY_TIMEOUT", defaults.timeout), ("PKI_NOTIFY_MAX_ATTEMPTS", defaults.max_attempts),
                          ("PKI_NOTIFY_RETRY_MINUTES", defaults.retry_minutes)):
        low, high = NOTIFICATION_BOUNDS[name]
        text = environ.get(name, "").strip()
        if text and (not text.isascii() or not text.isdigit() or not low <= int(text) <= high):
            raise ConfigError(f"{name} must be a whole number from {low} to {high} (it is {text!r}).")
        values[name] = int(text) if text else default
    return NotificationConfig(timeout=values["PKI_NOTIFY_TIMEOUT"], max_attempts=values["PKI_NOTIFY_MAX_ATTEMPTS"],
                              retry_minutes=values["PKI_NOTIFY_RETRY_MINUTES"])


def exit_on_config_error() -> None:
    """Entry-point guard: load `.env`, validate, and exit with one line on failure."""
    load_dotenv()
    try:
        validate_required_secrets()
        acme_validation_config()
        notification_config()
        mtls_proxy_config()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


#: How often an intermediate's full (base) CRL is re-signed; revocations in between go out in
#: delta CRLs at once. At most 10 days: BR 4.9.7's longest CRL validity below a root.
DEFAULT_CRL_FULL_INTERVAL_HOURS = 24
MAX_CRL_FULL_INTERVAL_HOURS = 240


def crl_full_interval_hours(environ: os._Environ[str] | dict[str, str] | None = None) -> int:
    """`PKI_CRL_FULL_INTERVAL_HOURS` (default 24), from 1 to 240 hours."""
    environ = os.environ if environ is None else environ
    text = environ.get("PKI_CRL_FULL_INTERVAL_HOURS", "").strip()
    if not text:
        return DEFAULT_CRL_FULL_INTERVAL_HOURS
    if not text.isdigit() or not 1 <= int(text) <= MAX_CRL_FULL_INTERVAL_HOURS:
        raise ConfigError(f"PKI_CRL_FULL_INTERVAL_HOURS must be a number of hours from 1 to "
                          f"{MAX_CRL_FULL_INTERVAL_HOURS} (it is {text!r}).")
    return int(text)


#: Where a TLS-terminating proxy may connect from, when PKI_MTLS_TRUSTED_PROXIES is not set.
DEFAULT_MTLS_TRUSTED_PROXIES = "127.0.0.1,::1"


@dataclass(frozen=True)
class MtlsProxyConfig:
    """The TLS proxy whose client-certificate headers the app believes (organizations.client_certificates).

    An empty `secret` turns client-certificate login off: the headers are then never believed.
    """

    secret: str = ""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.secret)


def mtls_proxy_config(environ: Mapping[str, str] | None = None) -> MtlsProxyConfig:
    """PKI_MTLS_PROXY_SECRET and PKI_MTLS_TRUSTED_PROXIES, checked (`ConfigError` names the variable).

    The secret, when set, is at least 32 characters and none of the other secrets; the proxies are
    IP addresses or CIDR networks, comma-separated (default the loopback addresses).
    """
    environ = os.environ if environ is None else environ
    secret = environ.get("PKI_MTLS_PROXY_SECRET", "")
    if secret:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"PKI_MTLS_PROXY_SECRET is too short: it must be at least {MIN_SECRET_LENGTH} "
                              f"characters (it has {len(secret)}).")
        if secret in (environ.get("PKI_JWT_SECRET"), environ.get("PKI_ENCRYPTION_KEY")):
            raise ConfigError("PKI_MTLS_PROXY_SECRET must differ from PKI_JWT_SECRET and PKI_ENCRYPTION_KEY.")
    text = environ.get("PKI_MTLS_TRUSTED_PROXIES", "").strip() or DEFAULT_MTLS_TRUSTED_PROXIES
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError("PKI_MTLS_TRUSTED_PROXIES must be IP addresses or CIDR networks, comma-separated, "
                              f"e.g. 127.0.0.1,10.0.0.0/24 (it has {entry!r}).") from None
    return MtlsProxyConfig(secret=secret, trusted_proxies=tuple(networks))


#: Debian's SoftHSM2 (`apt-get install softhsm2`); an HSM vendor's module goes in PKI_PKCS11_MODULE.
DEFAULT_PKCS11_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def pkcs11_module(environ: Mapping[str, str] | None = None) -> str:
    """`PKI_PKCS11_MODULE`: the PKCS#11 library for token-held CA keys (default Debian's SoftHSM2).

    An explicit value must be an absolute path to an existing file: a bare name would be looked
    up along the loader's search path, and a library is code that runs inside the CA.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("PKI_PKCS11_MODULE", "").strip()
    if not text:
        return DEFAULT_PKCS11_MODULE
    if not os.path.isabs(text) or not os.path.isfile(text):
        raise ConfigError(f"PKI_PKCS11_MODULE must be the absolute path of an existing PKCS#11 library "
                          f"(it is {text!r}).")
    return text


def pkcs11_pin_file(environ: Mapping[str, str] | None = None) -> str:
    """`PKI_PKCS11_PIN_FILE`: where the server reads the user PIN of the token of its intermediates.

    Optional (empty: no token-held intermediate can sign). The PIN itself is never a setting.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("PKI_PKCS11_PIN_FILE", "").strip()
    if text and (not os.path.isabs(text) or not os.path.isfile(text)):
        raise ConfigError(f"PKI_PKCS11_PIN_FILE must be the absolute path of an existing file (it is {text!r}).")
    return text
