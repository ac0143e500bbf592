"""OCSP (RFC 6960): request parsing, delegated responder certificates, responses.

Typical use by a responder view::

    try:
        request = parse_ocsp_request(body)
    except MalformedOCSPRequest:
        return ocsp_error_response("malformedRequest")
    if not cert_id_matches_issuer(request, ca_cert):
        return ocsp_error_response("unauthorized")
    status = lookup(request.serial_number)  # "good" | "revoked" | "unknown"
    return build_ocsp_response(request, ca_cert, responder_cert, responder_key, status, ...)
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature as InvalidSignatureError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from ._common import (
    authority_key_identifier,
    checked_serial,
    extension,
    require_key_matches,
    sign_certificate,
    start_time,
)
from .builders import PublicationUrls
from .errors import InvalidRequestError, PolicyError
from .keys import PublicKey, key_type_of
from .policy import clamp_validity, ensure_utc, utc_now
from .profiles import key_usage_from_flags
from .signing import IssuerKey, as_signer

#: Largest OCSP request accepted; real ones are a few hundred bytes.
MAX_OCSP_REQUEST_SIZE = 16 * 1024
#: RFC 8954 section 2.1: a nonce is 1 to 32 octets.
MAX_NONCE_LENGTH = 32
#: Default lifetime of a response (BR 4.9.10: between 8 hours and 10 days).
DEFAULT_RESPONSE_VALIDITY = timedelta(days=1)

STATUSES: dict[str, ocsp.OCSPCertStatus] = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}

ERROR_STATUSES: dict[str, ocsp.OCSPResponseStatus] = {
    "malformedRequest": ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
    "internalError": ocsp.OCSPResponseStatus.INTERNAL_ERROR,
    "tryLater": ocsp.OCSPResponseStatus.TRY_LATER,
    "sigRequired": ocsp.OCSPResponseStatus.SIG_REQUIRED,
    "unauthorized": ocsp.OCSPResponseStatus.UNAUTHORIZED,
}


class MalformedOCSPRequest(InvalidRequestError):
    """The bytes are not a single, well-formed OCSP request we can answer."""

    default_code = "ocsp_malformed"


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


def parse_ocsp_request(data: bytes, max_size: int = MAX_OCSP_REQUEST_SIZE) -> ocsp.OCSPRequest:
    """Parse a DER OCSP request, raising only :class:`MalformedOCSPRequest`.

    Refuses oversized input before parsing, anything that is not exactly one
    request (cryptography supports single-request OCSPRequests only, which is
    what every client sends), unknown hash algorithms, and nonces outside
    1..32 octets (RFC 8954 2.1).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedOCSPRequest("OCSP request must be DER bytes")
    if len(data) > max_size:
        raise MalformedOCSPRequest("OCSP request is too large")
    if not data:
        raise MalformedOCSPRequest("OCSP request is empty")
    try:
        request = ocsp.load_der_ocsp_request(bytes(data))
        # Touch every field now so later use cannot fail on a lazy decode.
        request.serial_number  # noqa: B018
        request.issuer_name_hash  # noqa: B018
        request.issuer_key_hash  # noqa: B018
        request.hash_algorithm  # noqa: B018
        nonce = request_nonce(request)
    except Exception:  # hostile input: any parser failure is "malformed"
        raise MalformedOCSPRequest("the data is not a valid OCSP request") from None
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise MalformedOCSPRequest("OCSP nonce must be 1 to 32 octets")
    return request


def ocsp_request_from_get_path(segment: str, max_size: int = MAX_OCSP_REQUEST_SIZE) -> ocsp.OCSPRequest:
    """Decode the ``{base64-request}`` part of a GET URL (RFC 6960 A.1) and parse it.

    Accepts URL-encoded standard base64 (what OpenSSL and browsers send) and,
    leniently, the URL-safe alphabet and missing padding.
    """
    if not isinstance(segment, str) or len(segment) > 2 * max_size:
        raise MalformedOCSPRequest("OCSP GET request is too large")
    text = unquote(segment).strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedOCSPRequest("OCSP GET request is not valid base64") from None
    return parse_ocsp_request(raw, max_size=max_size)


def request_nonce(request: ocsp.OCSPRequest) -> bytes | None:
    """The request's nonce extension value, or None."""
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """Read one DER TLV at ``offset``; return (tag, value, offset after it)."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    value = data[offset : offset + length]
    if len(value) != length:
        raise ValueError("truncated DER")
    return tag, value, offset + length


def public_key_bits(public_key: PublicKey) -> bytes:
    """The subjectPublicKey BIT STRING contents (without the unused-bits octet).

    This is what RFC 6960 4.1.1 issuerKeyHash and RFC 5280 4.2.1.2 key
    identifiers hash (and what OpenSSL's X509_pubkey_digest hashes).
    """
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, body, _ = _read_tlv(spki, 0)  # SubjectPublicKeyInfo ::= SEQUENCE {
    _, _, offset = _read_tlv(body, 0)  #   algorithm AlgorithmIdentifier,
    tag, bits, _ = _read_tlv(body, offset)  #   subjectPublicKey BIT STRING }
    if tag != 0x03 or not bits or bits[0] != 0:
        raise ValueError("unexpected SubjectPublicKeyInfo encoding")
    return bits[1:]


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def issuer_hashes(issuer_cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``issuer_cert`` under ``algorithm`` (RFC 6960 4.1.1)."""
    name_hash = _digest(algorithm, issuer_cert.subject.public_bytes())
    key_hash = _digest(algorithm, public_key_bits(issuer_cert.public_key()))  # type: ignore[arg-type]
    return name_hash, key_hash


def cert_id_matches_issuer(request: ocsp.OCSPRequest, issuer_cert: x509.Certificate) -> bool:
    """Whether the request's CertID names ``issuer_cert`` (hashes in the request's own algorithm).

    Works for SHA-1 (what most clients still send) and SHA-2 CertIDs.
    """
    try:
        algorithm = request.hash_algorithm
    except Exception:
        return False
    name_hash, key_hash = issuer_hashes(issuer_cert, algorithm)
    return hmac.compare_digest(name_hash, request.issuer_name_hash) and hmac.compare_digest(
        key_hash, request.issuer_key_hash
    )


# --------------------------------------------------------------------------
# Delegated responder certificate
# --------------------------------------------------------------------------


def build_ocsp_responder_certificate(
    issuer_cert: x509.Certificate,
    issuer_key: IssuerKey,
    responder_public_key: PublicKey,
    subject: x509.Name,
    days: int = 7,
    urls: PublicationUrls | None = None,
    serial: int | None = None,
    now: datetime | None = None,
) -> x509.Certificate:
    """Build a delegated OCSP responder certificate (RFC 6960 4.2.2.2, BR 7.1.2.8).

    EKU id-kp-OCSPSigning only, id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1:
    relying parties need not check the responder's own status, which is why
    its lifetime should be short, a few days), keyUsage digitalSignature
    critical, basicConstraints cA=FALSE critical, AKI and SKI.

    ``urls`` is accepted for symmetry with the other builders but not used:
    nocheck makes CRL and OCSP pointers pointless, and BR 7.1.2.8.2 (pkilint
    ``ocsp_responder.unknown_aia_access_method_present``, an ERROR) does not
    allow a caIssuers AIA in a responder certificate either; clients get the
    CA certificate from the response's chain or their own store.
    """
    require_key_matches(issuer_cert, issuer_key)
    key_type_of(responder_public_key)
    start, end = clamp_validity(
        start_time(now), days, None, issuer_cert.not_valid_after_utc, issuer_cert.not_valid_before_utc
    )
    extensions = [
        extension(x509.BasicConstraints(ca=False, path_length=None), True),
        extension(key_usage_from_flags(frozenset({"digital_signature"})), True),
        extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
        extension(x509.OCSPNoCheck(), False),
        extension(x509.SubjectKeyIdentifier.from_public_key(responder_public_key), False),
        extension(authority_key_identifier(issuer_cert), False),
    ]
    del urls  # see docstring: deliberately no AIA/CRLDP in a responder certificate
    return sign_certificate(
        issuer_name=issuer_cert.subject,
        subject=subject,
        public_key=responder_public_key,
        serial=checked_serial(serial),
        not_before=start,
        not_after=end,
        extensions=extensions,
        issuer_key=issuer_key,
    )


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OCSPCertId:
    """The CertID fields of one request (RFC 6960 4.1.1)."""

    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    hash_algorithm: hashes.HashAlgorithm

    @classmethod
    def from_request(cls, request: ocsp.OCSPRequest) -> OCSPCertId:
        return cls(request.issuer_name_hash, request.issuer_key_hash, request.serial_number, request.hash_algorithm)

    @classmethod
    def for_serial(
        cls, issuer_cert: x509.Certificate, serial: int, algorithm: hashes.HashAlgorithm | None = None
    ) -> OCSPCertId:
        """A CertID built from the issuer certificate (e.g. to pre-sign responses)."""
        algorithm = algorithm or hashes.SHA1()  # noqa: S303 - RFC 6960 CertID default, not a signature
        name_hash, key_hash = issuer_hashes(issuer_cert, algorithm)
        return cls(name_hash, key_hash, serial, algorithm)


def _check_responder(
    issuer_cert: x509.Certificate, responder_cert: x509.Certificate, responder_key: IssuerKey
) -> None:
    """RFC 6960 4.2.2.2: the signer is the CA itself or a responder it certified for OCSP."""
    if responder_cert.public_key() != responder_key.public_key():
        raise PolicyError("the responder key does not match the responder certificate", code="issuer_key_mismatch")
    if responder_cert == issuer_cert:
        return
    try:
        eku = responder_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if responder_cert.issuer != issuer_cert.subject or eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise PolicyError("the responder is not authorised by this CA", code="ocsp_unauthorized")
    if not _directly_issued_by(responder_cert, issuer_cert):
        raise PolicyError("the responder certificate was not issued by this CA", code="ocsp_unauthorized")


@functools.lru_cache(maxsize=256)
def _directly_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Signature check of a responder certificate, remembered: a responder signs thousands of
    answers and the verification costs more than signing one (certificates are immutable)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignatureError):
        return False
    return True


@functools.lru_cache(maxsize=256)
def _issuer_hashes_for(
    issuer_cert: x509.Certificate, algorithm_type: type[hashes.HashAlgorithm]
) -> tuple[bytes, bytes]:
    """:func:`issuer_hashes`, remembered per issuer and CertID hash (parameterless hash classes)."""
    return issuer_hashes(issuer_cert, algorithm_type())


def build_ocsp_response(
    cert_id: ocsp.OCSPRequest | OCSPCertId,
    issuer_cert: x509.Certificate,
    responder_cert: x509.Certificate,
    responder_key: IssuerKey,
    status: str,
    revoked_at: datetime | None = None,
    reason: x509.ReasonFlags | None = None,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Build and sign a successful basic OCSP response for one CertID; return DER.

    ``cert_id`` is the parsed request (its nonce is echoed unless ``nonce`` is
    given) or an :class:`OCSPCertId`. ``status`` is ``good``, ``revoked``
    (``revoked_at`` required; a ``reason`` of unspecified is omitted, as in
    the CRL) or ``unknown``. The responderID is the key hash (RFC 6960
    4.2.1, the compact form); a delegated responder's certificate is included
    in ``certs`` so clients can validate it (4.2.2.2). ``this_update`` defaults
    to now and ``next_update`` to one day later.

    Raises :class:`PolicyError` (``ocsp_unauthorized``) when the CertID does
    not name ``issuer_cert`` or the responder is not authorised by it; the
    caller answers those with ``ocsp_error_response("unauthorized")``.
    """
    cert_status = STATUSES.get(status)
    if cert_status is None:
        raise InvalidRequestError("OCSP status must be good, revoked or unknown", code="ocsp_status_invalid")
    if isinstance(cert_id, ocsp.OCSPRequest):
        if nonce is None:
            nonce = request_nonce(cert_id)
        cert_id = OCSPCertId.from_request(cert_id)
    expected = _issuer_hashes_for(issuer_cert, type(cert_id.hash_algorithm))
    if expected != (cert_id.issuer_name_hash, cert_id.issuer_key_hash):
        raise PolicyError("the request is for a different CA", code="ocsp_unauthorized")
    _check_responder(issuer_cert, responder_cert, responder_key)

    this_update = ensure_utc(this_update, "this_update") if this_update is not None else utc_now()
    next_update = (
        ensure_utc(next_update, "next_update") if next_update is not None else this_update + DEFAULT_RESPONSE_VALIDITY
    )
    if next_update <= this_update:
        raise InvalidRequestError("next_update must be after this_update", code="ocsp_invalid")
    revocation_time = None
    revocation_reason = None
    if cert_status is ocsp.OCSPCertStatus.REVOKED:
        if revoked_at is None:
            raise InvalidRequestError("a revoked status needs the revocation time", code="ocsp_invalid")
        revocation_time = ensure_utc(revoked_at, "revoked_at")
        if reason is not None and reason is not x509.ReasonFlags.unspecified:
            revocation_reason = reason

    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=cert_id.issuer_name_hash,
        issuer_key_hash=cert_id.issuer_key_hash,
        serial_number=cert_id.serial_number,
        algorithm=cert_id.hash_algorithm,
        cert_status=cert_status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revocation_time,
        revocation_reason=revocation_reason,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)
    if responder_cert != issuer_cert:
        builder = builder.certificates([responder_cert])
    if nonce is not None:
        if not 1 <= len(nonce) <= MAX_NONCE_LENGTH:
            raise MalformedOCSPRequest("OCSP nonce must be 1 to 32 octets")
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = as_signer(responder_key).sign_ocsp(builder)
    return response.public_bytes(serialization.Encoding.DER)


def ocsp_error_response(status: str | ocsp.OCSPResponseStatus) -> bytes:
    """DER of an unsuccessful OCSP response (RFC 6960 4.2.1), e.g. ``malformedRequest``."""
    if isinstance(status, str):
        code = ERROR_STATUSES.get(status)
        if code is None:
            raise ValueError(f"unknown OCSP error status {status!r}")
        status = code
    if status is ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError("successful is not an error status")
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
