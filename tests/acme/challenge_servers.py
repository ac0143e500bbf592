"""Real challenge responders for the validator's tests: Debian's pebble-challtestsrv and small local servers.

`ChallTestSrv` runs pebble-challtestsrv on free loopback ports (HTTP-01, HTTPS for redirect
targets, TLS-ALPN-01, DNS and its management API) and adds and removes answers through that
API. The small servers here cover what it cannot answer: a TLS-ALPN-01 responder serving a
certificate built by the test (wrong or non-critical extension, two SANs, an IP SAN, no ALPN), a
DNS server answering NXDOMAIN, and listeners that accept and never answer (the timeouts).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.rcode
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.debian import ensure_tool

LOOPBACK = "127.0.0.1"
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
START_TIMEOUT = 15


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def key_authorization(token: str, thumbprint: str = "x" * 43) -> str:
    return f"{token}.{thumbprint}"


@dataclass
class ChallTestSrv:
    """One pebble-challtestsrv process on loopback; every A query answers 127.0.0.1, AAAA none."""

    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    tls_alpn_port: int = field(default_factory=free_port)
    dns_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    management_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def resolver(self) -> str:
        return f"{LOOPBACK}:{self.dns_port}"

    def start(self) -> ChallTestSrv:
        binary = ensure_tool("pebble-challtestsrv")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [binary, "-http01", f"{LOOPBACK}:{self.http_port}", "-https01", f"{LOOPBACK}:{self.https_port}",
             "-tlsalpn01", f"{LOOPBACK}:{self.tls_alpn_port}", "-dns01", f"{LOOPBACK}:{self.dns_port}",
             "-management", f"{LOOPBACK}:{self.management_port}", "-defaultIPv4", LOOPBACK, "-defaultIPv6", ""],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pebble-challtestsrv exited at start: {self.log()}")
            if all(_accepts(port) for port in (self.management_port, self.http_port, self.tls_alpn_port)):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pebble-challtestsrv did not start in {START_TIMEOUT} s: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def manage(self, endpoint: str, **body: object) -> None:
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.management_port}/{endpoint}",
                                         data=json.dumps(body).encode(), method="POST")
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
            assert response.status == 200, f"{endpoint}: {response.status}"

    # The management API (pebble-challtestsrv's README), one method per answer kind.
    def add_http01(self, token: str, content: str) -> None:
        self.manage("add-http01", token=token, content=content)

    def add_redirect(self, path: str, target_url: str) -> None:
        self.manage("add-redirect", path=path, targetURL=target_url)

    def set_txt(self, host: str, value: str) -> None:
        self.manage("set-txt", host=_fqdn(host), value=value)

    def clear_txt(self, host: str) -> None:
        self.manage("clear-txt", host=_fqdn(host))

    def set_cname(self, host: str, target: str) -> None:
        self.manage("set-cname", host=_fqdn(host), target=_fqdn(target))

    def set_servfail(self, host: str) -> None:
        self.manage("set-servfail", host=_fqdn(host))

    def add_tlsalpn01(self, host: str, content: str) -> None:
        self.manage("add-tlsalpn01", host=host, content=content)


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


# --- Hostile or special TLS-ALPN-01 responders ------------------------------------------------


def challenge_certificate(key_auth: str, *, names: list[x509.GeneralName], critical: bool = True,
                          extension_value: bytes | None = None, with_extension: bool = True) -> tuple[bytes, bytes]:
    """A self-signed tls-alpn-01 certificate (PEM certificate, PEM key) with the parts a test chooses."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme tls-alpn-01 test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if with_extension:
        digest = hashlib.sha256(key_auth.encode()).digest()
        value = extension_value if extension_value is not None else bytes([0x04, len(digest)]) + digest
        builder = builder.add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, value), critical=critical)
    certificate = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@contextlib.contextmanager
def tls_responder(certificate_pem: bytes, key_pem: bytes, *, alpn: list[str] | None = ("acme-tls/1",),
                  host: str = LOOPBACK) -> Iterator[tuple[int, list[str]]]:
    """A TLS server on loopback serving one certificate; yields (port, SNI names seen)."""
    with tempfile.TemporaryDirectory() as directory:
        certificate_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        certificate_file.write_bytes(certificate_pem)
        key_file.write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate_file, key_file)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    server_names: list[str] = []
    context.sni_callback = lambda _sock, name, _context: server_names.append(name)

    def handle(connection: socket.socket) -> None:
        connection.settimeout(5)
        with context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(1)  # until the validator closes (an OSError, suppressed by the loop, ends it too)

    with tcp_server(handle, host) as port:
        yield port, server_names


@contextlib.contextmanager
def tcp_server(handle: Callable[[socket.socket], None], host: str = LOOPBACK) -> Iterator[int]:
    """A TCP server on `host` that hands each connection to `handle` on one thread; yields its port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(OSError), connection:
                handle(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# --- A small HTTP server for answers challtestsrv never gives (404, huge bodies, other ports) ----------

Route = tuple[int, dict[str, str], bytes] | Callable[[BaseHTTPRequestHandler], None]


class _RouteHandler(BaseHTTPRequestHandler):
    server: _RouteServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        route = self.server.routes.get(self.path)
        if route is None:
            route = (404, {"Content-Type": "text/plain"}, b"no such challenge\n")
        if callable(route):
            route(self)
            return
        status, headers, body = route
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _RouteServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    seen: list[tuple[str, str]]


class _RouteServer6(_RouteServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def http_responder(routes: dict[str, Route], host: str = LOOPBACK) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """An HTTP server on loopback answering `routes` (path: answer), else 404; yields (port, [(path, Host)])."""
    server = (_RouteServer6 if ":" in host else _RouteServer)((host, 0), _RouteHandler)
    server.routes, server.seen = routes, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def unbounded_body(handler: BaseHTTPRequestHandler) -> None:
    """200 with no Content-Length and a body far over the validator's limit, ended by closing."""
    handler.close_connection = True
    handler.send_response(200)
    handler.end_headers()
    with contextlib.suppress(OSError):
        for _ in range(64):
            handler.wfile.write(b"x" * 1024)


def dripping_body(handler: BaseHTTPRequestHandler) -> None:
    """200 whose body comes one byte at a time, each before any per-read timeout, and never ends."""
    handler.send_response(200)
    handler.send_header("Content-Length", "8000")
    handler.end_headers()
    with contextlib.suppress(OSError):
        for _ in range(300):  # gives up by itself after about a minute
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.2)


@contextlib.contextmanager
def raw_tcp_responder(answer: bytes) -> Iterator[int]:
    """A TCP server that answers every connection with `answer` (not HTTP, not TLS) and closes it."""

    def handle(connection: socket.socket) -> None:
        connection.settimeout(2)
        connection.recv(4096)
        connection.sendall(answer)

    with tcp_server(handle) as port:
        yield port


# --- Silent listeners and a DNS server for the NXDOMAIN case -------------------------------------


@contextlib.contextmanager
def silent_tcp_listener() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@contextlib.contextmanager
def silent_udp_socket() -> Iterator[int]:
    """A DNS 'server' that reads queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def nxdomain_dns_server() -> Iterator[int]:
    """A real DNS server on UDP loopback answering every query NXDOMAIN (challtestsrv never does)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            response = dns.message.make_response(dns.message.from_wire(data))
            response.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
