"""gunicorn's threaded worker, made so that a slow or silent client cannot hold it.

gunicorn 27's `gthread` worker hands each accepted connection to a thread, which waits up
to 5 s for a first byte and then reads the request line, the headers and the body with
blocking `recv` calls that have no time limit. A client that sends half a request line and
stops holds that thread for as long as it keeps the connection open; `threads` such
clients hold the worker. gunicorn 27.0.1 has no header or body timeout (`timeout` is the
worker heartbeat, `keepalive` the idle time between two requests), and recommends a
buffering proxy in front.

`GuardedThreadWorker` keeps gthread (threads for the application, one event loop for the
sockets) and changes how a request reaches a thread:

* **Requests gathered in the event loop.** The request line and headers, and then a body
  of a declared length up to `PKI_MAX_REQUEST_BYTES` or a chunked one to its last chunk,
  are gathered by the worker's event loop with non-blocking reads (`plan_body`,
  `Arrival`); a connection gets a thread only once its request is there. A head not
  complete within `PKI_HEADER_TIMEOUT` seconds (default 10) or such a body within
  `PKI_BODY_TIMEOUT` (default 30) is answered 408 and closed (RFC 9110 section 15.5.9); a
  head that outgrows gunicorn's header limits, 431 (RFC 6585 section 5). Idle connections
  and half-sent requests cost a file descriptor, never a thread. What a worker holds for
  all its connections is capped (`BUFFER_CAP`); beyond it, threads read under deadlines.
* **Larger bodies on a deadline.** The parser reads the socket through `DeadlineSocket`:
  the whole body within `PKI_BODY_TIMEOUT`, and never more than `PKI_IDLE_TIMEOUT`
  (default 60) without a byte. The application lifts the overall deadline for an upload it
  has authorized (`pki_project.serving.lift_body_deadline`: a global admin's
  multi-gigabyte restore). A late body raises `RequestTimeout` (a `TimeoutError`) in the
  application's read, which answers 408.
* **Sends bounded.** A client that stops reading its answer for `PKI_IDLE_TIMEOUT` is dropped.
* **Closing off the event loop.** gunicorn 27 closes a connection gracefully (FIN, then up
  to 2 s of draining, RFC 9112 section 9.6) in the event loop, where a client trickling
  bytes would stall every other connection of the worker; here the request's own thread
  does it.
* **`Connection: close` on request.** When the application answered without reading the
  body (413, 415...), `pki_project.serving.close_after_response` makes the answer close
  the connection instead of draining what the client still sends.

Connections whose first bytes are not an HTTP/1 head (TLS terminated by gunicorn itself,
HTTP/2 cleartext, the uwsgi protocol) take gunicorn's stock path: the README's production
set-up terminates TLS at the proxy.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial

from gunicorn import http, util
from gunicorn.workers.gthread import TConn, ThreadWorker

from pki_project import serving

HEAD_END = b"\r\n\r\n"
READ_SIZE = 65536
HEAD_SLACK = 1024  # room for a PROXY protocol line before the request line
CHUNK_SLACK = 16384  # chunk-size lines around a chunked body of at most PKI_MAX_REQUEST_BYTES
BUFFER_CAP = 64 * 1024 * 1024  # bytes a worker gathers for all its connections at once; beyond, threads read
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# RFC 9110 section 15.5.9 and RFC 6585 section 5; both close the connection.
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class RequestTimeout(TimeoutError):
    """The client did not send its request (head or body) in time."""


class DeadlineSocket:
    """A connection's socket as gunicorn's parser reads it: each `recv` bounded by a deadline and the idle timeout.

    Everything else (send, fileno, close...) goes to the socket itself.
    """

    def __init__(self, sock: socket.socket, idle: float) -> None:
        self._sock = sock
        self.idle = idle
        self.deadline: float | None = None  # time.monotonic() value; None: only the idle timeout

    def recv(self, size: int) -> bytes:
        timeout = self.idle
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout("the request was not received in time")
            timeout = min(timeout, remaining)
        previous = self._sock.gettimeout()
        self._sock.settimeout(timeout if previous is None else min(previous, timeout))
        try:
            return self._sock.recv(size)
        except TimeoutError:  # socket.timeout
            raise RequestTimeout("the request was not received in time") from None
        finally:
            self._sock.settimeout(previous)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class RequestControl:
    """What the application may ask of the connection serving it (`pki_project.serving`)."""

    def __init__(self, reader: DeadlineSocket, request) -> None:
        self._reader = reader
        self._request = request

    def lift_body_deadline(self) -> None:
        self._reader.deadline = None

    def close_after_response(self) -> None:
        self._request.must_close = True  # gunicorn answers "Connection: close" and does not drain the body


def max_head_bytes(cfg) -> int:
    """The largest head gunicorn's parser could accept with these limits (0 means its built-in maximum)."""
    line = cfg.limit_request_line if cfg.limit_request_line > 0 else 8190
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
    field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
    return line + 2 + fields * (field_size + 2) + 4 + HEAD_SLACK


# --- What the event loop waits for after the head -----------------------------------------------

NO_BODY, LENGTH, CHUNKED, UNBUFFERED = "no body", "length", "chunked", "unbuffered"


@dataclass(frozen=True)
class BodyPlan:
    kind: str  # NO_BODY, LENGTH (buffer `length` bytes), CHUNKED (buffer to the last chunk), UNBUFFERED
    length: int = 0
    expects_continue: bool = False  # Expect: 100-continue (RFC 9110 section 10.1.1)


def plan_body(head: bytes, limit: int) -> BodyPlan:
    """How much of the body the event loop gathers before a thread sees the request.

    A body of a declared length up to `limit` (PKI_MAX_REQUEST_BYTES) and a chunked one are
    gathered; a larger one (the authorized restore, or one the application refuses at once
    with 413) and anything gunicorn's parser will refuse anyway (two lengths, an unknown
    coding) go to a thread unread, where the body deadline applies.
    """
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expects_continue = False
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.extend(coding.strip() for coding in value.split(b","))
        elif name == b"expect":
            expects_continue = value == b"100-continue"
    if codings:
        chunked = codings[-1] == b"chunked" and not lengths
        return BodyPlan(CHUNKED if chunked else UNBUFFERED, expects_continue=expects_continue)
    if not lengths:
        return BodyPlan(NO_BODY)
    if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) > limit:
        return BodyPlan(UNBUFFERED)
    length = int(lengths[0])
    return BodyPlan(LENGTH, length, expects_continue) if length else BodyPlan(NO_BODY)


@dataclass
class Arrival:
    """What has arrived of a connection's next request while the event loop gathers it."""

    data: bytearray
    deadline: float  # the head's, then the body's
    head_end: int = -1  # just past the head's CRLF CRLF; -1 while the head is incomplete
    plan: BodyPlan | None = None
    scanned: int = 0  # where the next search (for the head's end, or the last chunk) starts

    def find(self, marker: bytes) -> int:
        found = self.data.find(marker, self.scanned)
        self.scanned = max(self.scanned, len(self.data) - len(marker) + 1)
        return found

    def body_complete(self) -> bool:
        if self.plan.kind == LENGTH:
            return len(self.data) - self.head_end >= self.plan.length
        # RFC 9112 section 7.1: the last chunk is "0" (perhaps with extensions) on a line of its own. A
        # chunk's data holding those bytes only hands the request on early: the thread reads the rest.
        if self.data.startswith(b"0", self.head_end) and self.data.find(b"\r\n", self.head_end) > self.head_end:
            return True
        return self.find(b"\r\n0") >= 0


class GuardedThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = serving.Timeouts.from_environment()
        self.body_limit = serving.max_request_bytes()
        self.arriving: dict[TConn, Arrival] = {}
        self.buffered = 0  # bytes held in `arriving`, all connections together
        self.head_limit = max_head_bytes(self.cfg)
        self.guarded = (not self.cfg.is_ssl and self.cfg.http2_cleartext == "off"
                        and getattr(self.cfg, "protocol", "http") == "http")

    # --- event loop: gathering requests -------------------------------------------------------

    def enqueue_req(self, conn: TConn) -> None:
        """Every way to a thread passes here (accept, keep-alive, pipelining): only gathered requests go on."""
        if not self.guarded or getattr(conn, "gathered", None) is not None:
            super().enqueue_req(conn)
            return
        buffered = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        arrival = Arrival(bytearray(buffered), time.monotonic() + self.timeouts.header)
        self.arriving[conn] = arrival
        self.buffered += len(arrival.data)
        if not self._progress(conn, arrival):
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_bytes, conn))

    def _on_bytes(self, conn: TConn, _sock) -> None:
        arrival = self.arriving[conn]
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(conn)
            return
        arrival.data += data
        self.buffered += len(data)
        self._progress(conn, arrival)

    def _progress(self, conn: TConn, arrival: Arrival) -> bool:
        """Look at what arrived; hand the request to a thread once it is all here. True once it is handed on."""
        if arrival.head_end < 0:
            found = arrival.find(HEAD_END)
            if found < 0:
                if len(arrival.data) > self.head_limit:
                    self.log.info("Closed a connection from %s: request head over %d bytes", _peer(conn),
                                  self.head_limit)
                    self._drop(conn, HEAD_TOO_LARGE)
                    return True
                return False
            arrival.head_end, arrival.scanned = found + len(HEAD_END), found + len(HEAD_END)
            arrival.plan = plan_body(bytes(arrival.data[:found]), self.body_limit)
            if arrival.plan.kind in (NO_BODY, UNBUFFERED) or self.buffered > BUFFER_CAP:
                self._dispatch(conn, arrival)
                return True
            arrival.deadline = time.monotonic() + self.timeouts.body
            if arrival.plan.expects_continue and len(arrival.data) == arrival.head_end:
                with contextlib.suppress(OSError):
                    conn.sock.send(CONTINUE)  # the client waits for it before sending the body
        if arrival.body_complete() or len(arrival.data) - arrival.head_end > self.body_limit + CHUNK_SLACK:
            self._dispatch(conn, arrival)
            return True
        return False

    def _dispatch(self, conn: TConn, arrival: Arrival) -> None:
        self._stop_gathering(conn)
        conn.gathered = arrival
        super().enqueue_req(conn)

    def _stop_gathering(self, conn: TConn) -> None:
        arrival = self.arriving.pop(conn, None)
        if arrival is not None:
            self.buffered -= len(arrival.data)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: TConn, answer: bytes | None = None) -> None:
        arrival = self.arriving.get(conn)
        self._stop_gathering(conn)
        if answer is not None and arrival is not None and arrival.data:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also close the connections whose request is late (the event loop calls this about once a second)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, arrival in list(self.arriving.items()):
            if arrival.deadline > now:
                continue
            if arrival.data:
                part = "head" if arrival.head_end < 0 else "body"
                timeout = self.timeouts.header if arrival.head_end < 0 else self.timeouts.body
                self.log.info("Closed a connection from %s: request %s not received within %g s", _peer(conn),
                              part, timeout)
            self._drop(conn, REQUEST_TIMEOUT)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:
            for conn in list(self.arriving):
                self._drop(conn)

    # --- the request's thread -----------------------------------------------------------------

    def handle(self, conn: TConn):
        if not self.guarded:
            return super().handle(conn)
        self._hand_to_parser(conn)
        result = super().handle(conn)
        if result is False:  # here, not in the event loop, which gunicorn 27 would stall for up to 2 s
            util.close_graceful(conn.sock)
            conn.closed_in_thread = True
        return result

    def finish_request(self, conn: TConn, fs) -> None:
        """Back in the event loop after a request; a connection its thread closed only needs counting."""
        if getattr(conn, "closed_in_thread", False):
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

    def _hand_to_parser(self, conn: TConn) -> None:
        arrival, conn.gathered = conn.gathered, None
        conn.data_ready = True  # the request is here: no waiting for a first byte
        if conn.parser is None:
            conn.sock.setblocking(True)
            conn.reader = DeadlineSocket(conn.sock, self.timeouts.idle)
            conn.parser = http.get_parser(self.cfg, conn.reader, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(arrival.data))
        conn.reader.deadline = time.monotonic() + self.timeouts.header  # the head is here; bytes after it may not be

    def handle_request(self, req, conn: TConn):
        reader = getattr(conn, "reader", None)
        if reader is None:
            return super().handle_request(req, conn)
        reader.deadline = time.monotonic() + self.timeouts.body
        conn.sock.settimeout(self.timeouts.idle)  # a client that stops reading the answer is dropped
        try:
            with serving.bound(RequestControl(reader, req)):
                return super().handle_request(req, conn)
        finally:
            reader.deadline = None  # what is left of the body drains under gunicorn's own bound


def _peer(conn: TConn) -> str:
    client = conn.client
    return str(client[0]) if isinstance(client, tuple) and client else "a unix socket"
