"""The validator's reach: one deadline for the whole validation, name lookups and TCP connections.

Every step (lookups, connects, TLS handshakes, reads, redirects) draws on one `Deadline`, so a
validation ends within `PKI_ACME_VALIDATION_TIMEOUT` seconds however the peer behaves: socket
timeouts are set to what is left before each step, and a watchdog shuts a socket down when the
time is up, which ends a read that a slowly dripping peer would otherwise keep alive.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from acme_server.validation.outcome import CONNECTION, DNS, ChallengeFailure
from pki_project.config import parse_resolver_address

# getaddrinfo cannot be given a timeout: it runs here and is waited for at most the time left.
_SYSTEM_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="acme-validation-lookup")


@dataclass(frozen=True)
class ValidationConfig:
    """The settings one validation runs with (read from Django's settings when it starts)."""

    http_port: int
    tls_port: int
    resolver: tuple[str, int] | None  # (address, port); None: the system resolver
    timeout: float

    @classmethod
    def from_settings(cls) -> ValidationConfig:
        from django.conf import settings

        resolver_text = getattr(settings, "PKI_ACME_DNS_RESOLVER", "")
        return cls(
            http_port=int(getattr(settings, "PKI_ACME_HTTP_PORT", 80)),
            tls_port=int(getattr(settings, "PKI_ACME_TLS_PORT", 443)),
            resolver=parse_resolver_address(resolver_text) if resolver_text else None,
            timeout=float(getattr(settings, "PKI_ACME_VALIDATION_TIMEOUT", 10.0)),
        )


class Deadline:
    """The end of one validation; `remaining()` is what every step may still take."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def timed_out(self, what: str) -> ChallengeFailure:
        return ChallengeFailure(CONNECTION, f"{what} timed out (the validation may take {self.seconds:g} s)")

    def step_timeout(self, what: str) -> float:
        """The time left for a step, or the timeout problem when none is left."""
        left = self.remaining()
        if left <= 0.0:
            raise self.timed_out(what)
        return left

    @contextlib.contextmanager
    def watch(self, sock: socket.socket) -> Iterator[SocketWatch]:
        """Shut `sock` (or whatever socket replaced it in the watch, e.g. its TLS wrapper) down at the deadline."""
        watched = SocketWatch(sock)
        timer = threading.Timer(self.remaining(), watched.shut_down)
        timer.daemon = True
        timer.start()
        try:
            yield watched
        finally:
            timer.cancel()


class SocketWatch:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def shut_down(self) -> None:
        # The plain socket's shutdown, even on an SSLSocket: it only stops the descriptor, so the
        # thread blocked in a read wakes up with end-of-file; TLS state is left to that thread.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def make_resolver(config: ValidationConfig, deadline: Deadline) -> dns.resolver.Resolver:
    """A dnspython resolver: the configured one, or the system's (/etc/resolv.conf); no cache, no search list."""
    if config.resolver is None:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            raise ChallengeFailure(DNS, "no DNS resolver is configured on the validating host") from None
    else:
        resolver = dns.resolver.Resolver(configure=False)
        address, port = config.resolver
        resolver.nameservers = [address]
        resolver.port = port
    resolver.cache = None
    resolver.timeout = max(deadline.remaining(), 0.01)
    resolver.lifetime = resolver.timeout
    return resolver


def dns_failure(error: dns.exception.DNSException, what: str, deadline: Deadline) -> ChallengeFailure:
    """The problem for a failed lookup: NXDOMAIN, timeout and resolver failure each say so."""
    if isinstance(error, dns.resolver.NXDOMAIN):
        return ChallengeFailure(DNS, f"DNS lookup of {what}: the name does not exist (NXDOMAIN)")
    if isinstance(error, dns.exception.Timeout):
        return ChallengeFailure(DNS, f"DNS lookup of {what} timed out (the validation may take {deadline.seconds:g} s)")
    if isinstance(error, dns.resolver.NoNameservers):
        return ChallengeFailure(DNS, f"DNS lookup of {what} failed: the resolver answered with an error (SERVFAIL "
                                     "or REFUSED)")
    return ChallengeFailure(DNS, f"DNS lookup of {what} failed ({type(error).__name__})")


def resolve_addresses(host: str, config: ValidationConfig, deadline: Deadline) -> list[str]:
    """The addresses to try for `host`: itself when it is an IP literal, else its A then AAAA records."""
    if ip_literal(host) is not None:
        return [host]
    if config.resolver is None:
        return _system_addresses(host, deadline)
    resolver = make_resolver(config, deadline)
    qname = dns.name.from_text(host)
    addresses: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = resolver.resolve(qname, rdtype, search=False, lifetime=deadline.step_timeout(f"lookup of {host}"),
                                      raise_on_no_answer=False)
        except dns.exception.DNSException as error:
            raise dns_failure(error, f"{host} ({dns.rdatatype.to_text(rdtype)})", deadline) from None
        addresses.extend(rdata.address for rdata in answer.rrset or ())
    if not addresses:
        raise ChallengeFailure(DNS, f"DNS lookup of {host}: no A or AAAA record")
    return addresses


def _system_addresses(host: str, deadline: Deadline) -> list[str]:
    future = _SYSTEM_LOOKUPS.submit(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
    try:
        results = future.result(timeout=deadline.step_timeout(f"lookup of {host}"))
    except FutureTimeout:
        raise ChallengeFailure(DNS, f"DNS lookup of {host} timed out (the validation may take "
                                    f"{deadline.seconds:g} s)") from None
    except socket.gaierror as error:
        raise ChallengeFailure(DNS, f"DNS lookup of {host} failed: {error.strerror}") from None
    addresses = list(dict.fromkeys(str(result[4][0]) for result in results))
    if not addresses:
        raise ChallengeFailure(DNS, f"DNS lookup of {host}: no address")
    return addresses


def display_address(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def connect(addresses: list[str], port: int, deadline: Deadline) -> socket.socket:
    """A TCP connection to the first of `addresses` that accepts one on `port`."""
    reasons = []
    for address in addresses:
        timeout = deadline.step_timeout(f"connecting to {display_address(address, port)}")
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except TimeoutError:
            reasons.append(f"{display_address(address, port)}: timed out")
        except ConnectionRefusedError:
            reasons.append(f"{display_address(address, port)}: connection refused")
        except OSError as error:
            reasons.append(f"{display_address(address, port)}: {error.strerror or type(error).__name__}")
    raise ChallengeFailure(CONNECTION, "could not connect to " + "; ".join(reasons))
