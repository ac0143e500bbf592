"""http-01 (RFC 8555 §8.3; IP identifiers RFC 8738 §3): the key authorization at a well-known URL.

GET http://{host}:{PKI_ACME_HTTP_PORT}/.well-known/acme-challenge/{token}, connecting to the
identifier's address (looked up through PKI_ACME_DNS_RESOLVER when it is set). At most
`MAX_REDIRECTS` redirects are followed, and only to http on port 80 or PKI_ACME_HTTP_PORT and
https on 443 or PKI_ACME_TLS_PORT (an https target's certificate is not checked: the proof is the
body, not the server's certificate). At most `MAX_BODY_BYTES` of the answer are read; the body,
without surrounding whitespace, must be the key authorization. No proxy is used, whatever the
environment says: http.client never reads one.
"""

from __future__ import annotations

import hmac
import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from acme_server.validation.identifiers import Identifier
from acme_server.validation.network import (
    Deadline,
    ValidationConfig,
    connect,
    ip_literal,
    resolve_addresses,
)
from acme_server.validation.outcome import CONNECTION, INCORRECT_RESPONSE, UNAUTHORIZED, ChallengeFailure

MAX_REDIRECTS = 10
MAX_BODY_BYTES = 8 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "private-pki-acme-validator/1"
WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class Target:
    scheme: str  # http or https
    host: str  # a name or an IP address (IPv6 without brackets)
    port: int
    path: str  # path and query

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.path}"


@dataclass(frozen=True)
class Response:
    status: int
    location: str | None
    body: bytes


def validate_http01(identifier: Identifier, token: str, key_authorization: str, config: ValidationConfig,
                    deadline: Deadline) -> None:
    """Return when the answer is the key authorization; raise `ChallengeFailure` otherwise."""
    target = Target("http", identifier.value, config.http_port, f"/.well-known/acme-challenge/{token}")
    for redirects in range(MAX_REDIRECTS + 1):
        response = fetch(target, config, deadline)
        if response.status not in REDIRECT_STATUSES:
            break
        if redirects == MAX_REDIRECTS:
            raise ChallengeFailure(CONNECTION, f"{target.url} redirected once more after {MAX_REDIRECTS} redirects: "
                                               f"at most {MAX_REDIRECTS} are followed")
        target = redirect_target(target, response.location, config)
    if response.status != http.client.OK:
        raise ChallengeFailure(UNAUTHORIZED, f"{target.url} answered HTTP {response.status}, not 200 with the key "
                                             "authorization")
    body = response.body.strip(WHITESPACE)
    if not body:
        raise ChallengeFailure(UNAUTHORIZED, f"{target.url} answered with an empty body: no key authorization is "
                                             "served for this token")
    if not hmac.compare_digest(body, key_authorization.encode()):
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{target.url} answered with a body that is not the key "
                                                   "authorization of this challenge")


def redirect_target(current: Target, location: str | None, config: ValidationConfig) -> Target:
    """Where a redirect points, if it may be followed: http(s), a host, and one of the allowed ports."""
    if not location:
        raise ChallengeFailure(CONNECTION, f"{current.url} redirected without a Location")
    parts = urlsplit(urljoin(current.url, location.strip()))
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ChallengeFailure(CONNECTION, f"{current.url} redirected to a URL that is not http or https with a host: "
                                           "not followed")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ChallengeFailure(CONNECTION, f"{current.url} redirected to a URL with an invalid port") from None
    allowed = {"http": {80, config.http_port}, "https": {443, config.tls_port}}[parts.scheme]
    if port not in allowed:
        ports = ", ".join(str(number) for number in sorted(allowed))
        raise ChallengeFailure(CONNECTION, f"{current.url} redirected to {parts.scheme} port {port}: only {ports} "
                                           "are followed")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname.lower(), port, path)


def fetch(target: Target, config: ValidationConfig, deadline: Deadline) -> Response:
    """One GET of `target` within the deadline, the body read only up to the limit."""
    sock = connect(resolve_addresses(target.host, config, deadline), target.port, deadline)
    try:
        with deadline.watch(sock) as watched:
            if target.scheme == "https":
                sock.settimeout(deadline.step_timeout(f"TLS handshake with {target.url}"))
                sock = watched.sock = _unverified_tls().wrap_socket(
                    sock, server_hostname=None if ip_literal(target.host) else target.host)
            return _exchange(sock, target, deadline)
    except ChallengeFailure:
        raise
    except (OSError, http.client.HTTPException) as error:
        if deadline.expired:
            raise deadline.timed_out(f"GET {target.url}") from None
        raise ChallengeFailure(CONNECTION, f"GET {target.url} failed: {_reason(error)}") from None
    finally:
        sock.close()


def _exchange(sock: socket.socket, target: Target, deadline: Deadline) -> Response:
    connection = http.client.HTTPConnection(target.host, target.port)
    connection.sock = sock
    sock.settimeout(deadline.step_timeout(f"GET {target.url}"))
    connection.request("GET", target.path, headers={
        "Host": target.host_header, "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"})
    response = connection.getresponse()
    try:
        if response.status != http.client.OK:
            return Response(response.status, response.getheader("Location"), b"")
        if response.length is not None and response.length > MAX_BODY_BYTES:
            raise ChallengeFailure(INCORRECT_RESPONSE, f"{target.url} answered with a body of {response.length} "
                                                       f"bytes: at most {MAX_BODY_BYTES} are read")
        declared = response.length
        sock.settimeout(deadline.step_timeout(f"reading {target.url}"))
        body = response.read(MAX_BODY_BYTES + 1)
        if deadline.expired:  # the watchdog ended the read: what came is only part of the answer
            raise deadline.timed_out(f"reading {target.url}")
        if len(body) > MAX_BODY_BYTES:
            raise ChallengeFailure(INCORRECT_RESPONSE, f"{target.url} answered with a body larger than "
                                                       f"{MAX_BODY_BYTES} bytes")
        if declared is not None and len(body) < declared:
            raise ChallengeFailure(CONNECTION, f"{target.url} closed the connection after {len(body)} of the "
                                               f"{declared} bytes it announced")
        return Response(response.status, None, body)
    finally:
        response.close()  # the rest of the body is never read: closing drops it with the connection


def _unverified_tls() -> ssl.SSLContext:
    """For https redirect targets: the body is the proof, so the certificate is not checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # on purpose, see above
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _reason(error: Exception) -> str:
    if isinstance(error, ssl.SSLError):
        return f"TLS error ({error.reason or type(error).__name__})"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, http.client.HTTPException):
        return f"not a valid HTTP answer ({type(error).__name__})"
    if isinstance(error, TimeoutError):
        return "timed out"
    return error.strerror or type(error).__name__
