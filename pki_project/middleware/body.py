"""Request bodies: bounded before anything reads them; multipart only where a view takes files.

Two middlewares, at two places in `MIDDLEWARE` (see settings.py):

* `RequestSizeMiddleware`, near the top, before sessions, authentication or anything else
  runs: a `Content-Length` that is not a number answers 400, and one over what the route
  could ever accept answers 413 at once, without reading a byte. Every route accepts at
  most `PKI_MAX_REQUEST_BYTES` (256 KiB by default); the one upload route (the restore)
  accepts up to its own bound (`PKI_BACKUP_MAX_UPLOAD_BYTES`); the OCSP responder refuses
  larger requests itself, unread, with an OCSP malformedRequest (RFC 6960 section 2.3). The route is looked up
  only for such rare large bodies, so ordinary requests (OCSP included) pay nothing.
* `RequestBodyMiddleware`, between RBAC and the CSRF policy: the route and the caller are
  known (authentication and RBAC have run, neither reads a body) and nothing has parsed
  the body yet (the CSRF check reads `request.POST` next). It refuses multipart/form-data
  with 415 unless the view takes files (`pki_project.uploads`), hands a view that answers
  oversized bodies in its own protocol (the OCSP responder) such a body unread, and reads
  every other body:
  into memory for every ordinary route (a chunked body is counted while it is read and cut
  at the limit), or, for the upload route and only for a caller its policy admits (a global
  admin), streamed to the private `PKI_UPLOAD_DIR` by the policy's bounded handler. A body
  that does not arrive in time (the gunicorn worker's deadlines) answers 408, one that ends
  early 400, one that turns out larger than declared or allowed 413.

Every refusal changes nothing, answers JSON `{"error": {"code", "message"}}` to API
clients and a page to browsers, and asks the server to close the connection rather than
read the rest of the body (`pki_project.serving`).
"""

from __future__ import annotations

import logging
import math
from io import BytesIO

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve

from pki_project import serving
from pki_project.errors import error_response
from pki_project.uploads import (
    InMemoryUploadHandler,
    UploadPolicy,
    own_body_limit_of,
    upload_policy_of,
    view_takes_files,
)

logger = logging.getLogger(__name__)

MULTIPART = "multipart/form-data"
READ_SIZE = 64 * 1024


class InvalidLength(ValueError):
    """The Content-Length header is not a non-negative integer."""


def declared_length(request: HttpRequest) -> int | None:
    """The body length the client declared, None when it declared none."""
    text = request.META.get("CONTENT_LENGTH")
    if text in (None, ""):
        return None
    if not str(text).isdigit():
        raise InvalidLength(text)
    return int(text)


def is_chunked(request: HttpRequest) -> bool:
    """A body sent with Transfer-Encoding: chunked (RFC 9112 section 7.1): its length is known only once read."""
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def body_limit() -> int:
    return int(settings.PKI_MAX_REQUEST_BYTES)


def refuse(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    """A refusal that read (at most part of) the body: close the connection after it."""
    logger.warning("Refused the body of %s %s from %s: %s (%s)", request.method, request.path,
                   request.META.get("REMOTE_ADDR", "?"), status, code)
    serving.close_after_response()
    return error_response(request, status, code, message)


def too_large(request: HttpRequest, limit: int) -> HttpResponse:
    return refuse(request, 413, "too_large",
                  f"The request body is too large: at most {limit} bytes are accepted here.")


class RequestSizeMiddleware:
    """First line: a declared length over anything the route accepts is refused before any other work."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = declared_length(request)
        except InvalidLength:
            return refuse(request, 400, "bad_request", "The Content-Length header must be a number of bytes.")
        if declared is not None and declared > body_limit():
            limit = self._route_limit(request)
            if declared > limit:
                return too_large(request, limit)
        return self.get_response(request)

    @staticmethod
    def _route_limit(request: HttpRequest) -> int:
        try:
            view = resolve(request.path_info).func
        except Resolver404:
            return body_limit()
        if own_body_limit_of(view) is not None:
            return math.inf  # the view refuses it itself, unread, in its own protocol (OCSP)
        policy = upload_policy_of(view)
        return max(body_limit(), policy.handler.maximum_bytes()) if policy is not None else body_limit()


class RequestBodyMiddleware:
    """Once the route and the caller are known, and before anyone parses it: refuse or read the body."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        try:
            declared = declared_length(request)
        except InvalidLength:  # RequestSizeMiddleware refuses it first; kept for a MIDDLEWARE without it
            return refuse(request, 400, "bad_request", "The Content-Length header must be a number of bytes.")
        chunked = is_chunked(request)
        if not declared and not chunked:
            return None
        if request.content_type == MULTIPART and not view_takes_files(view_func):
            return refuse(request, 415, "unsupported_media_type",
                          "This route takes no multipart/form-data body (only file uploads do): send JSON "
                          "or an ordinary form (application/x-www-form-urlencoded).")
        policy = upload_policy_of(view_func)
        if policy is not None and request.content_type == MULTIPART:
            return self._receive_upload(request, policy, declared, chunked)
        own_limit = own_body_limit_of(view_func)
        if own_limit is not None and declared is not None and declared > min(own_limit, body_limit()):
            serving.close_after_response()  # the view answers without reading it
            return None
        return self._read_into_memory(request, declared, chunked)

    # --- ordinary bodies: into memory, at most PKI_MAX_REQUEST_BYTES ---------------------------

    def _read_into_memory(self, request: HttpRequest, declared: int | None, chunked: bool) -> HttpResponse | None:
        limit = body_limit()
        if declared is not None and declared > limit:
            return too_large(request, limit)
        try:
            if chunked:
                data = _read_at_most(request.environ["wsgi.input"], limit)
                if data is None:
                    return too_large(request, limit)
                _install_body(request, data)
            else:
                data = request.body
        except OSError as error:  # UnreadablePostError, or the server's own stream for a chunked body
            return _unreadable(request, error)
        if declared is not None and len(data) < declared:
            return refuse(request, 400, "incomplete_body", "The request body ended before its declared length.")
        if request.content_type == MULTIPART:
            request.upload_handlers = [InMemoryUploadHandler(request)]
        return None

    # --- the upload route: authorized callers only, streamed to PKI_UPLOAD_DIR -----------------

    def _receive_upload(self, request: HttpRequest, policy: UploadPolicy, declared: int | None,
                        chunked: bool) -> HttpResponse | None:
        principal = getattr(request, "principal", None)
        if not policy.may_upload(principal):
            if principal is None:
                return refuse(request, 401, "not_authenticated", "Authentication required.")
            return refuse(request, 403, "permission_denied", policy.refusal)
        if chunked or declared is None:
            return refuse(request, 411, "length_required", "Send the upload with a Content-Length header.")
        maximum = policy.handler.maximum_bytes()
        if declared > maximum:
            return too_large(request, maximum)
        serving.lift_body_deadline()  # a large upload takes its time; it may not stall (PKI_IDLE_TIMEOUT)
        handler = policy.handler(request)
        request.upload_handlers = [handler]
        try:
            request.FILES  # noqa: B018 - parsed here, under this error handling, not later by the CSRF check
        except (OSError, RequestDataTooBig, MultiPartParserError, TooManyFieldsSent, TooManyFilesSent) as error:
            handler.upload_interrupted()  # Django's parser leaves the file it was writing open: remove it now
            return _refused_upload(request, error)
        if handler.exceeded:
            handler.upload_interrupted()
            request.close()  # removes what was written
            return too_large(request, maximum)
        return None


def _refused_upload(request: HttpRequest, error: Exception) -> HttpResponse:
    if isinstance(error, OSError):  # UnreadablePostError: the client stalled or went away
        return _unreadable(request, error)
    if isinstance(error, RequestDataTooBig):  # the form fields beside the file, over PKI_MAX_REQUEST_BYTES
        return too_large(request, body_limit())
    return refuse(request, 400, "malformed_upload", "The upload is not a well-formed multipart/form-data body.")


def _read_at_most(stream, limit: int) -> bytes | None:
    """Read `stream` to its end, or return None as soon as it holds more than `limit` bytes."""
    chunks, total = [], 0
    while True:
        chunk = stream.read(min(READ_SIZE, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def _install_body(request: HttpRequest, data: bytes) -> None:
    """A chunked body, read: what Django's `request.body` would have made of it had its length been declared."""
    request.META["CONTENT_LENGTH"] = str(len(data))
    request._body = data
    request._stream = BytesIO(data)


def _timed_out(error: BaseException | None) -> bool:
    """Whether a read failed on a deadline: Django wraps the server's error, once or twice, in UnreadablePostError."""
    while error is not None:
        if isinstance(error, TimeoutError):
            return True
        error = error.__cause__
    return False


def _unreadable(request: HttpRequest, error: OSError) -> HttpResponse:
    if _timed_out(error):
        return refuse(request, 408, "request_timeout", "The request body did not arrive in time.")
    return refuse(request, 400, "incomplete_body", "The request body could not be read to its end.")
