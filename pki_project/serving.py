"""What the application may tell the server about the request it is serving, and the time limits.

The gunicorn worker (`pki_project.gunicorn_worker`) gives a client `PKI_HEADER_TIMEOUT`
seconds for its request line and headers and `PKI_BODY_TIMEOUT` for its body, and
drops it when it makes no progress for `PKI_IDLE_TIMEOUT` while sending or reading.
The application knows things the server does not: that this caller is a global admin
allowed to upload a multi-gigabyte backup (lift the body deadline; the idle timeout
still holds), or that it answered without reading the body (close the connection
rather than read the rest).

The worker binds a `ConnectionControl` to the thread that serves the request; the
functions here reach it. Under any other server (Django's test client, runserver) no
control is bound and they do nothing. Django-free.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024


def max_request_bytes(environ: Mapping[str, str] | None = None) -> int:
    """`PKI_MAX_REQUEST_BYTES`: the largest body of every route but the restore (settings.py reads it too)."""
    environ = os.environ if environ is None else environ
    text = environ.get("PKI_MAX_REQUEST_BYTES", "")
    if not text:
        return DEFAULT_MAX_REQUEST_BYTES
    if not text.isdigit() or not 1024 <= int(text) <= 64 * 1024 * 1024:
        raise ValueError(f"PKI_MAX_REQUEST_BYTES must be a number of bytes from 1024 to 67108864 (it is {text!r}).")
    return int(text)


@dataclass(frozen=True)
class Timeouts:
    """Seconds a client may take; read from the environment (or `.env`) when the worker starts."""

    header: float = 10.0  # from the first byte of a request to the end of its headers
    body: float = 30.0  # the whole body of an ordinary request (at most PKI_MAX_REQUEST_BYTES)
    idle: float = 60.0  # without progress while the client sends an authorized upload or reads an answer

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Timeouts:
        environ = os.environ if environ is None else environ
        return cls(header=_seconds(environ, "PKI_HEADER_TIMEOUT", cls.header),
                   body=_seconds(environ, "PKI_BODY_TIMEOUT", cls.body),
                   idle=_seconds(environ, "PKI_IDLE_TIMEOUT", cls.idle))


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds (it is {text!r}).") from None
    if not 0 < value <= 3600:
        raise ValueError(f"{name} must be between 0 and 3600 seconds (it is {text}).")
    return value


class ConnectionControl(Protocol):
    def lift_body_deadline(self) -> None:
        """No overall deadline for this request's body; the idle timeout still applies to every read."""

    def close_after_response(self) -> None:
        """Answer with `Connection: close` and do not read what is left of the body."""


_bound = threading.local()


@contextmanager
def bound(control: ConnectionControl) -> Iterator[None]:
    """The worker: `control` serves the requests of this thread until the block ends."""
    _bound.control = control
    try:
        yield
    finally:
        _bound.control = None


def _control() -> ConnectionControl | None:
    return getattr(_bound, "control", None)


def lift_body_deadline() -> None:
    """The application authorized a large upload: let the body take as long as it keeps moving."""
    control = _control()
    if control is not None:
        control.lift_body_deadline()


def close_after_response() -> None:
    """The application answered without reading the whole body: close the connection after the answer."""
    control = _control()
    if control is not None:
        control.close_after_response()
