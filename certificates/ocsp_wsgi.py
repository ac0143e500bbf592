"""The OCSP GET fast path: RFC 5019 lookups answered in front of Django's middleware stack.

`with_ocsp_fast_path(application)` wraps the WSGI application (pki_project/wsgi.py). A plain
`GET /pki/ocsp/{ca}/{request}` (RFC 6960 A.1, RFC 5019 5) is answered here by the same service
and the same response helper as `public_views.ocsp_get`, with the headers the middleware stack
would add (security headers, metrics by route, the per-IP rate limit's count, and Django's
request signals for the database connections, at most once a second per thread), so the answer
is the same bytes and headers; only the path through the middlewares, the URL resolver and the
request object is gone.

Anything else goes to Django untouched: another method or path, a request that is not plain
http (HSTS is Django's), a Host that ALLOWED_HOSTS refuses, a body, credentials or cookies (the
authentication middleware counts refused ones), a conditional request (304 handling), a
forwarded host or scheme, a malformed request, a client over the rate limit (Django answers the
429 and audits the refusal), or an error while answering (internalError included).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import get_path_info
from django.http.request import split_domain_port, validate_host

from certificates import public_views
from certificates.crypto.ocsp import MalformedOCSPRequest, ocsp_request_from_get_path
from certificates.services.ocsp import answer_parsed_ocsp_request
from pki_project import metrics, ratelimit
from pki_project.middleware.headers import security_headers

logger = logging.getLogger(__name__)

ROUTE = "pki-ocsp-get"
#: The route `pki-ocsp-get` of certificates/public_urls.py (a slug, then the rest of the path).
OCSP_GET_PATH = re.compile(r"/pki/ocsp/(?P<ca>[-a-zA-Z0-9_]+)/(?P<request>.+)")
#: Present in the request: Django answers it (credentials, cookies, conditions, a body, a proxy's say).
DJANGO_ONLY = ("HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
               "HTTP_TRANSFER_ENCODING", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_SSL")
REASONS = {200: "200 OK"}
HOUSEKEEPING_SECONDS = 1.0
_thread = threading.local()

WSGIApplication = Callable[[dict, Callable], Iterable[bytes]]
Answered = tuple[str, list[tuple[str, str]], bytes]


def with_ocsp_fast_path(application: WSGIApplication) -> WSGIApplication:
    def fast_path_application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        answered = answer_ocsp_get(environ)
        if answered is None:
            return application(environ, start_response)
        status, headers, body = answered
        start_response(status, headers)
        return [body]

    return fast_path_application


def answer_ocsp_get(environ: dict) -> Answered | None:
    """The answer to a plain OCSP GET, or None for Django to answer the request."""
    match = _fast_path_match(environ)
    if match is None:
        return None
    started = time.perf_counter()
    housekeeping = _housekeeping_due()
    if housekeeping:
        signals.request_started.send(sender=with_ocsp_fast_path, environ=environ)
    try:
        answered = _answer(environ, match["ca"], match["request"])
    finally:
        if housekeeping:
            signals.request_finished.send(sender=with_ocsp_fast_path)
    if answered is not None:
        metrics.LATENCY.labels(ROUTE).observe(time.perf_counter() - started)
        metrics.REQUESTS.labels(ROUTE, "GET", f"{answered[0][0]}xx").inc()
    return answered


def _housekeeping_due() -> bool:
    """Whether this thread runs Django's request signals for this request: at most every HOUSEKEEPING_SECONDS.

    They recycle the thread's database connection (CONN_MAX_AGE) and arm its health check, a
    `SELECT 1` round trip before the next query: once per request would double the database
    round trips of an answer. A connection that broke in between fails the status query, and that
    answer (internalError) goes to Django, whose own request signals replace the connection.
    """
    now = time.monotonic()
    if now - getattr(_thread, "housekeeping_at", float("-inf")) < HOUSEKEEPING_SECONDS:
        return False
    _thread.housekeeping_at = now
    return True


def _fast_path_match(environ: dict) -> re.Match | None:
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("SCRIPT_NAME") or \
            environ.get("wsgi.url_scheme") != "http" or environ.get("CONTENT_LENGTH", "0") not in ("", "0"):
        return None
    if any(name in environ for name in DJANGO_ONLY):
        return None
    match = OCSP_GET_PATH.fullmatch(get_path_info(environ))
    if match is None or not _host_allowed(environ):
        return None
    return match


def _host_allowed(environ: dict) -> bool:
    """Django's ALLOWED_HOSTS check (HttpRequest.get_host) on the Host header, without building a request."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _answer(environ: dict, ca: str, encoded: str) -> Answered | None:
    try:
        try:
            parsed = ocsp_request_from_get_path(encoded)
        except MalformedOCSPRequest:
            return None  # before counting: Django counts the request it answers
        if _over_rate_limit(environ):
            return None  # Django refuses it again, with the access.deny audit event of a 429
        answer = answer_parsed_ocsp_request(ca, parsed)
        if answer.status == "internalError":
            return None  # perhaps a broken database connection: Django replaces it and answers again
        return _as_wsgi(public_views._ocsp_response(answer, cacheable=not answer.nonce))
    except Exception:  # Django answers it again, with its own error handling and logging
        logger.exception("OCSP fast path failed for CA %s; handing the request to Django", ca)
        return None


def _over_rate_limit(environ: dict) -> bool:
    """The public routes' per-IP limit (public_views._rate_limited), counted in the same bucket."""
    limit = settings.PKI_PUBLIC_RATE_PER_IP
    if limit <= 0:
        return False
    try:
        result = ratelimit.hit(f"pki-public:{environ.get('REMOTE_ADDR') or 'unknown'}", limit=limit,
                               window=settings.PKI_PUBLIC_RATE_WINDOW)
    except Exception:  # the shared cache is down: serve rather than fail relying parties
        logger.exception("Rate limit counter unavailable for %s", environ.get("PATH_INFO", ""))
        return False
    return not result.allowed


def _as_wsgi(response) -> Answered:
    for name, value in security_headers().items():
        response.headers.setdefault(name, value)
    body = response.content
    response.headers.setdefault("Content-Length", str(len(body)))  # as CommonMiddleware sets it
    status = REASONS.get(response.status_code) or f"{response.status_code} {response.reason_phrase}"
    return status, list(response.items()), body
