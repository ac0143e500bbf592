"""The relying parties' endpoints under /pki/: CA certificates, CRLs and the OCSP responder.

Public (rbac.json), plain http by design (RFC 5280 4.2.1.13; BR 7.1.2.11.2), rate-limited
per client IP in the shared cache (429). Everything is served from storage: a CRL is
signed on revocation and on schedule, never per request; OCSP answers are cached
(see `certificates.services.ocsp`). The views stay thin: look up, answer, set headers.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache, wraps

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from csp.decorators import csp_exempt
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from certificates.crypto.ocsp import (
    MAX_OCSP_REQUEST_SIZE,
    MalformedOCSPRequest,
    ocsp_error_response,
    ocsp_request_from_get_path,
)
from certificates.models import CertificateAuthority, CertificateRevocationList
from certificates.services.crls import ensure_fresh_crl
from certificates.services.ocsp import OCSPAnswer, answer_ocsp_request, answer_parsed_ocsp_request
from pki_project import ratelimit
from pki_project.uploads import answers_oversized_bodies

logger = logging.getLogger(__name__)

OCSP_RESPONSE_TYPE = "application/ocsp-response"
CRL_MAX_AGE = 3600  # seconds: relying parties re-fetch at least hourly, or at nextUpdate if sooner
CA_CERTIFICATE_MAX_AGE = 86400


# --- Plumbing ---------------------------------------------------------------------------------


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _rate_limited(too_many: Callable[[int], HttpResponse]) -> Callable:
    """Count each request per client IP in the shared cache; over the limit, `too_many(retry_after)`."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limit = settings.PKI_PUBLIC_RATE_PER_IP
            if limit > 0:
                try:
                    result = ratelimit.hit(f"pki-public:{_client_ip(request)}", limit=limit,
                                           window=settings.PKI_PUBLIC_RATE_WINDOW)
                except Exception:  # the shared cache is down: serve rather than fail relying parties
                    logger.exception("Rate limit counter unavailable for %s", request.path)
                    return view(request, *args, **kwargs)
                if not result.allowed:
                    response = too_many(result.retry_after)
                    response["Retry-After"] = str(result.retry_after)
                    return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _plain_too_many(retry_after: int) -> HttpResponse:
    return HttpResponse(f"Too many requests; retry in {retry_after} s.\n", status=429,
                        content_type="text/plain; charset=utf-8")


def _ocsp_too_many(retry_after: int) -> HttpResponse:
    # RFC 6960 4.2.1 tryLater, inside an HTTP 429 so generic clients back off as well.
    return HttpResponse(ocsp_error_response("tryLater"), status=429, content_type=OCSP_RESPONSE_TYPE)


def _not_found(message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=404, content_type="text/plain; charset=utf-8")


def _find_ca(reference: str) -> CertificateAuthority | None:
    return CertificateAuthority.objects.select_related("certificate").by_reference(reference).first()


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest() + '"'


def _not_modified(request: HttpRequest, etag: str, last_modified: datetime | None = None) -> bool:
    """RFC 9110 13.1.2 / 13.1.3: If-None-Match decides when present; else If-Modified-Since (whole seconds).

    `If-Modified-Since` counts only on GET and HEAD, and only when it parses (an unparsable date is
    ignored, as RFC 9110 13.1.3 says).
    """
    wanted = request.headers.get("If-None-Match", "")
    if wanted:
        return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in wanted.split(","))
    since = request.headers.get("If-Modified-Since", "")
    if not since or last_modified is None or request.method not in ("GET", "HEAD"):
        return False
    since_seconds = parse_http_date_safe(since)
    return since_seconds is not None and int(last_modified.timestamp()) <= since_seconds


def _cached_artifact(request: HttpRequest, content: bytes, content_type: str, *, last_modified: datetime,
                     max_age: int, expires: datetime | None = None, filename: str = "") -> HttpResponse:
    """A public, cacheable artifact with ETag (SHA-256 of the bytes), Last-Modified and 304 support
    (`If-None-Match`, or `If-Modified-Since` against `last_modified`: a CRL's thisUpdate)."""
    etag = _etag(content)
    response = HttpResponse(status=304) if _not_modified(request, etag, last_modified) else HttpResponse(
        content, content_type=content_type)
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified.timestamp())
    response["Cache-Control"] = f"public, max-age={max(0, max_age)}"
    if expires is not None:
        response["Expires"] = http_date(expires.timestamp())
    if filename and response.status_code == 200:
        response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


# --- CA certificates ----------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@_rate_limited(_plain_too_many)
def ca_certificate(request: HttpRequest, ca: str, encoding: str) -> HttpResponse:
    """GET /pki/ca/{ca}.crt (DER, RFC 5280 4.2.2.1 caIssuers) and /pki/ca/{ca}.pem."""
    authority = _find_ca(ca)
    if authority is None:
        return _not_found(f"No CA '{ca}'.")
    der = bytes(authority.certificate.der)
    if encoding == "pem":
        content = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
        content_type = "application/x-pem-file"
    else:
        content, content_type = der, "application/pkix-cert"  # RFC 2585 section 4.1
    filename = f"{authority.slug}.{'pem' if encoding == 'pem' else 'crt'}"
    return _cached_artifact(request, content, content_type, last_modified=authority.certificate.created_at,
                            max_age=CA_CERTIFICATE_MAX_AGE, filename=filename)


# --- CRLs ---------------------------------------------------------------------------------------


def _crl_response(request: HttpRequest, crl: CertificateRevocationList, encoding: str, name: str) -> HttpResponse:
    der = bytes(crl.der)
    if encoding == "pem":
        content = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
        content_type = "application/x-pem-file"
    else:
        content, content_type = der, "application/pkix-crl"  # RFC 2585 section 4.2
    seconds_left = int((crl.next_update - timezone.now()).total_seconds())
    return _cached_artifact(request, content, content_type, last_modified=crl.this_update,
                            max_age=min(CRL_MAX_AGE, seconds_left), expires=crl.next_update, filename=name)


@require_http_methods(["GET", "HEAD"])
@_rate_limited(_plain_too_many)
def crl(request: HttpRequest, ca: str, encoding: str, delta: bool = False) -> HttpResponse:
    """GET /pki/crl/{ca}.crl|.pem (full) and /pki/crl/{ca}.delta.crl|.delta.pem (RFC 5280 5.2.4)."""
    authority = _find_ca(ca)
    if authority is None:
        return _not_found(f"No CA '{ca}'.")
    latest = ensure_fresh_crl(authority, delta=delta)
    if latest is None:
        if authority.is_root:
            return _not_found(f"No CRL has been published for the root CA '{authority.slug}' yet: the operator "
                              f"signs it with `manage.py generate_crl --ca {authority.slug}` (root password).")
        return _not_found(f"No {'delta ' if delta else ''}CRL is available for the CA '{authority.slug}'.")
    suffix = ".delta" if delta else ""
    return _crl_response(request, latest, encoding, f"{authority.slug}{suffix}.{'pem' if encoding == 'pem' else 'crl'}")


# --- OCSP ---------------------------------------------------------------------------------------


def _ocsp_response(answer: OCSPAnswer, *, cacheable: bool, request: HttpRequest | None = None) -> HttpResponse:
    """RFC 5019 section 6.2 caching headers on successful answers to GET requests.

    A GET whose `If-None-Match` names the answer's ETag (SHA-256 of its DER) gets a 304 with the
    same caching headers and no body; so does one whose `If-Modified-Since` is at or after the
    answer's thisUpdate (its Last-Modified).
    """
    if not answer.successful:
        response = HttpResponse(answer.der, content_type=OCSP_RESPONSE_TYPE)
        response["Cache-Control"] = "no-store"
        return response
    if not cacheable:
        response = HttpResponse(answer.der, content_type=OCSP_RESPONSE_TYPE)
        response["Cache-Control"] = "no-store"  # a POST answer (maybe with a nonce) is for this client only
        return response
    etag, last_modified, expires = _validators(answer)
    if request is not None and _not_modified(request, etag, answer.this_update):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(answer.der, content_type=OCSP_RESPONSE_TYPE)
    max_age = max(0, int((answer.next_update - timezone.now()).total_seconds()))
    response["Cache-Control"] = f"max-age={max_age}, public, no-transform, must-revalidate"
    response["Last-Modified"] = last_modified
    response["Expires"] = expires
    response["ETag"] = etag
    return response


@lru_cache(maxsize=4096)
def _validators(answer: OCSPAnswer) -> tuple[str, str, str]:
    """ETag, Last-Modified and Expires of an answer: computed once per answer a worker serves again and again."""
    return _etag(answer.der), http_date(answer.this_update.timestamp()), http_date(answer.next_update.timestamp())


def _malformed() -> HttpResponse:
    return _ocsp_response(OCSPAnswer.error("malformedRequest"), cacheable=False)


def _internal_error(reference: str) -> HttpResponse:
    logger.exception("OCSP request for CA %s failed", reference)
    return HttpResponse(ocsp_error_response("internalError"), content_type=OCSP_RESPONSE_TYPE)


def _answer_post(request: HttpRequest, ca: str) -> HttpResponse:
    try:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or int(declared) > MAX_OCSP_REQUEST_SIZE:  # refuse before reading it
            return _malformed()
        body = request.read(MAX_OCSP_REQUEST_SIZE + 1)
        return _ocsp_response(answer_ocsp_request(ca, body), cacheable=False)
    except Exception:
        return _internal_error(ca)


@answers_oversized_bodies(MAX_OCSP_REQUEST_SIZE)  # malformedRequest, not an HTTP 413 (pki_project.middleware.body)
@csrf_exempt  # anonymous, no cookies used: an OCSP POST is no CSRF target
@csp_exempt()  # binary answers: no document a Content-Security-Policy could protect
@require_http_methods(["GET", "HEAD", "POST"])
@_rate_limited(_ocsp_too_many)
def ocsp_post(request: HttpRequest, ca: str) -> HttpResponse:
    """POST /pki/ocsp/{ca}/ with a DER OCSPRequest body (RFC 6960 A.1).

    A GET here carries no request at all: malformedRequest (an OCSP answer, never a page).
    """
    if request.method != "POST":
        return _malformed()
    return _answer_post(request, ca)


@answers_oversized_bodies(MAX_OCSP_REQUEST_SIZE)
@csrf_exempt
@csp_exempt()
@require_http_methods(["GET", "HEAD", "POST"])
@_rate_limited(_ocsp_too_many)
def ocsp_elsewhere(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path below /pki/ocsp/ (none, a name that is no CA slug, `{ca}` without the slash).

    An OCSP client gets an OCSP answer, never an HTML page: a GET malformedRequest (there is no
    request to read); a POST to `/pki/ocsp/{ca}` (no trailing slash, as some clients are set up) is
    answered as `/pki/ocsp/{ca}/`, and to anything else (no CA) unauthorized or malformedRequest
    as its body deserves (RFC 6960 2.3).
    """
    if request.method != "POST":
        return _malformed()
    return _answer_post(request, rest.strip("/") or "-")


@csp_exempt()
@require_http_methods(["GET", "HEAD"])
@_rate_limited(_ocsp_too_many)
def ocsp_get(request: HttpRequest, ca: str, request_b64: str) -> HttpResponse:
    """GET /pki/ocsp/{ca}/{url-encoded base64 DER OCSPRequest} (RFC 6960 A.1, RFC 5019 5)."""
    try:
        try:
            parsed = ocsp_request_from_get_path(request_b64)
        except MalformedOCSPRequest:
            return _malformed()
        answer = answer_parsed_ocsp_request(ca, parsed)
        return _ocsp_response(answer, cacheable=not answer.nonce, request=request)
    except Exception:
        return _internal_error(ca)
