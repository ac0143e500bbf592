"""EST (RFC 7030) encodings and authentication: certs-only PKCS#7, base64 bodies, HTTP Basic, client certificates.

Which client certificate a request presents is for the deployment's TLS front to say: by default
the mTLS proxy's headers, checked by `organizations.client_certificates` (trusted proxy address,
shared secret, this PKI's own valid, unrevoked certificate); the setting
`PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR` may name another function `(request) -> Certificate |
None`. Where none vouches for a certificate, `simplereenroll` takes an enrollment token as
`simpleenroll` does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from certificates.errors import InvalidInput
from certificates.models import Certificate, CertificateAuthority
from certificates.selectors import ca_chain
from certificates.services.records import load_x509
from organizations.client_certificates import verified_client_certificate

_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]*$")
ClientCertificateAuthenticator = Callable[[HttpRequest], Certificate | None]


def certs_only(certificates: list[x509.Certificate]) -> bytes:
    """A degenerate (certs-only) PKCS#7 SignedData, DER, base64 in lines (RFC 7030 4.1.3, 4.2.3)."""
    return base64.encodebytes(pkcs7.serialize_certificates(certificates, Encoding.DER))


def ca_certificates(ca: CertificateAuthority) -> list[x509.Certificate]:
    """RFC 7030 4.1.3: the CA's certificate and those up to its root, which the client needs to build its chain."""
    return [load_x509(authority.certificate) for authority in ca_chain(ca)]


def decode_pkcs10(body: bytes) -> bytes:
    """The DER of a base64-encoded PKCS#10 body (RFC 7030 4.2.1); a PEM body is accepted too."""
    text = body.strip()
    if text.startswith(b"-----BEGIN"):
        return text
    if not text or not _BASE64_TEXT.fullmatch(text):
        raise InvalidInput("The body must be a base64-encoded PKCS#10 certification request.", code="csr_malformed")
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("The body is not valid base64.", code="csr_malformed") from None


def basic_password(request: HttpRequest) -> str | None:
    """The password of `Authorization: Basic` (RFC 7617), None when there is no usable Basic header."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep and password else None


def client_certificate_authenticator() -> ClientCertificateAuthenticator | None:
    path = getattr(settings, "PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR", "")
    return import_string(path) if path else None


def current_client_certificate(request: HttpRequest) -> Certificate | None:
    """The verified certificate the client presented: by the configured authenticator, else the mTLS proxy's
    (`organizations.client_certificates`; None when no trusted proxy vouched for one)."""
    authenticate = client_certificate_authenticator()
    if authenticate is not None:
        return authenticate(request)
    return verified_client_certificate(request, door="est")
