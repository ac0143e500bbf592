"""The machines' doors: `POST /enroll/` (JSON, a one-time token) and EST under `/.well-known/est/{ca}/`.

Both are public in rbac.json: the token (or the client certificate) is the credential. HTTP in,
one service call, HTTP out. `/enroll/` answers JSON (`{"error": {"code", "message"}}` on refusal);
EST answers what RFC 7030 says (base64 certs-only PKCS#7) and plain-text errors (4.2.3).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from certificates.errors import NotFound, ServiceError
from certificates.models import CertificateAuthority
from certificates.services.artifacts import certificate_pem, chain_pem
from certificates.services.records import load_x509
from enrollment.services.enroll import Enrolled, RateLimited, enroll_with_token, reenroll_with_certificate
from enrollment.services.est import (
    basic_password,
    ca_certificates,
    certs_only,
    current_client_certificate,
    decode_pkcs10,
)
from pki_project.errors import json_error

logger = logging.getLogger(__name__)
PKCS7_MIME = "application/pkcs7-mime"
CERTS_ONLY_MIME = "application/pkcs7-mime; smime-type=certs-only"
PKCS10_TYPES = ("application/pkcs10", "application/x-pkcs10")
BASIC_CHALLENGE = 'Basic realm="est", charset="UTF-8"'


# --- POST /enroll/ --------------------------------------------------------------------------------


def _json_body(request: HttpRequest) -> dict:
    if request.content_type != "application/json":
        raise _Refusal(415, "unsupported_media_type", "Send the token and the CSR as application/json.")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _Refusal(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _Refusal(400, "invalid", 'The body is a JSON object: {"token": "...", "csr": "PEM"}.')
    for field in ("token", "csr"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise _Refusal(400, "invalid", f"'{field}' is required and is a string.")
    for field in ("ca", "organization"):
        if field in body and not isinstance(body[field], str):
            raise _Refusal(400, "invalid", f"'{field}' is a string (a slug).")
    return body


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _enrolled_json(enrolled: Enrolled) -> JsonResponse:
    certificate = enrolled.certificate
    response = JsonResponse({
        "id": certificate.pk, "serial": certificate.serial, "ca": enrolled.token.ca.slug if enrolled.token else None,
        "profile": certificate.profile, "not_before": certificate.not_before.isoformat(),
        "not_after": certificate.not_after.isoformat(), "fingerprint_sha256": certificate.fingerprint_sha256,
        "certificate_pem": certificate_pem(certificate).decode(), "chain_pem": chain_pem(certificate).decode(),
    }, status=201)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt  # no ambient credential: the token is in the body
@never_cache
@require_POST
def enroll(request: HttpRequest) -> HttpResponse:
    """A CSR and a one-time token: the certificate and its chain (PEM), once per token."""
    try:
        body = _json_body(request)
        ca = None
        if body.get("ca"):
            ca = CertificateAuthority.objects.by_reference(body["ca"]).first()
            if ca is None:
                raise NotFound("No such CA.", code="unknown_ca")
        enrolled = enroll_with_token(body["token"], body["csr"], request=request, ca=ca,
                                     organization=body.get("organization"))
    except _Refusal as refusal:
        return json_error(refusal.status, refusal.code, refusal.message)
    except RateLimited as error:
        return json_error(429, error.code, error.message, headers={"Retry-After": str(error.retry_after)})
    except ServiceError as error:
        return json_error(error.status, error.code, error.message)
    return _enrolled_json(enrolled)


# --- EST (RFC 7030) -------------------------------------------------------------------------------


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    """RFC 7030 4.2.3: an error is a human-readable text/plain body with a 4xx status."""
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _pkcs7(body: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Transfer-Encoding"] = "base64"  # RFC 7030 4.1.3, 4.2.3
    response["Cache-Control"] = "no-store"
    return response


def est_endpoint(view: Callable) -> Callable:
    """The CA of the path (an intermediate, else 404) and refusals as plain text."""

    @csrf_exempt  # no cookies: the token or the client certificate is the credential
    @never_cache
    @wraps(view)
    def wrapped(request: HttpRequest, ca: str) -> HttpResponse:
        authority = (CertificateAuthority.objects.filter(slug=ca, parent__isnull=False)
                     .select_related("certificate", "organization").first())
        if authority is None:
            return _text(404, "No EST service here.")
        try:
            return view(request, authority)
        except RateLimited as error:
            return _text(429, error.message, {"Retry-After": str(error.retry_after)})
        except ServiceError as error:
            headers = {"WWW-Authenticate": BASIC_CHALLENGE} if error.status == 401 else None
            return _text(error.status, error.message, headers)

    return wrapped


def _pkcs10_body(request: HttpRequest) -> bytes | HttpResponse:
    if request.content_type not in PKCS10_TYPES:
        return _text(415, "RFC 7030 4.2.1: send the request as application/pkcs10 (base64 DER).")
    return decode_pkcs10(request.body)


def _issued(enrolled: Enrolled) -> HttpResponse:
    """RFC 7030 4.2.3: certs-only, containing only the certificate that was issued."""
    return _pkcs7(certs_only([load_x509(enrolled.certificate)]), CERTS_ONLY_MIME)


def _unauthorized() -> HttpResponse:
    return _text(401, "Authenticate with HTTP Basic: the password is an enrollment token.",
                 {"WWW-Authenticate": BASIC_CHALLENGE})


@require_GET
@est_endpoint
def cacerts(request: HttpRequest, ca: CertificateAuthority) -> HttpResponse:
    """RFC 7030 4.1: the CA certificates, certs-only PKCS#7, base64."""
    return _pkcs7(certs_only(ca_certificates(ca)), PKCS7_MIME)


@require_POST
@est_endpoint
def simpleenroll(request: HttpRequest, ca: CertificateAuthority) -> HttpResponse:
    """RFC 7030 4.2.1: a base64 PKCS#10, authenticated by an enrollment token as the Basic password."""
    password = basic_password(request)
    if password is None:
        return _unauthorized()
    csr = _pkcs10_body(request)
    if isinstance(csr, HttpResponse):
        return csr
    return _issued(enroll_with_token(password, csr, request=request, ca=ca, channel="est-enroll"))


@require_POST
@est_endpoint
def simplereenroll(request: HttpRequest, ca: CertificateAuthority) -> HttpResponse:
    """RFC 7030 4.2.2: by the client's current certificate (when the TLS front vouches for one), else a token."""
    current = current_client_certificate(request)
    password = basic_password(request) if current is None else None
    if current is None and password is None:
        return _unauthorized()
    csr = _pkcs10_body(request)
    if isinstance(csr, HttpResponse):
        return csr
    if current is not None:
        return _issued(reenroll_with_certificate(current, csr, ca=ca, request=request))
    return _issued(enroll_with_token(password, csr, request=request, ca=ca, channel="est-reenroll"))


@require_GET
@est_endpoint
def csrattrs(request: HttpRequest, ca: CertificateAuthority) -> HttpResponse:
    """RFC 7030 4.5.2: no particular attributes are asked for (the profile decides what is issued): 204."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response
