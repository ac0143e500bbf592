"""Loading and vetting certificate signing requests (PKCS#10, RFC 2986).

Every failure is an :class:`InvalidRequestError` with a specific code; no
input, however hostile, makes these functions raise anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import InvalidRequestError
from .keys import KeyType, PublicKey, key_type_of
from .names import common_name_of, dedupe_sans, normalize_general_name

#: Largest CSR accepted, checked before any parsing.
MAX_CSR_SIZE = 64 * 1024
#: Most subjectAltName entries accepted in one request.
MAX_SANS = 100

_PEM_MARKER = b"-----BEGIN"


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidRequestError("CSR text must be ASCII PEM", code="csr_malformed") from None
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise InvalidRequestError("CSR must be PEM text or DER bytes", code="csr_malformed")


def _parse(raw: bytes) -> x509.CertificateSigningRequest:
    try:
        if _PEM_MARKER in raw:
            return x509.load_pem_x509_csr(raw)
        return x509.load_der_x509_csr(raw)
    except Exception:  # hostile input: any parser failure is "malformed"
        raise InvalidRequestError(
            "the data is not a valid PEM or DER certificate signing request", code="csr_malformed"
        ) from None


@dataclass(frozen=True)
class VettedCsr:
    """A CSR that passed every check of :func:`vet_csr`, with what the checks extracted.

    Callers use these values instead of asking the CSR again, so nothing is parsed,
    normalised or validated twice on the issuance path.
    """

    csr: x509.CertificateSigningRequest
    public_key: PublicKey
    key_type: KeyType
    sans: list[x509.GeneralName]
    common_name: str | None


def vet_csr(data: bytes | str) -> VettedCsr:
    """Parse and vet a CSR given as PEM or DER.

    Checks, in order: size (``csr_too_large``, before parsing), syntax
    (``csr_malformed``), proof of possession / signature (``csr_bad_signature``),
    key strength (``weak_key``), basicConstraints cA=TRUE (``ca_requested``),
    number of SANs (``too_many_sans``) and SAN syntax (``san_invalid``).
    """
    if isinstance(data, bytes | bytearray | memoryview | str) and len(data) > MAX_CSR_SIZE:
        raise InvalidRequestError(f"CSR is larger than {MAX_CSR_SIZE // 1024} KiB", code="csr_too_large")
    raw = _as_bytes(data)
    if not raw.strip():
        raise InvalidRequestError("CSR is empty", code="csr_malformed")
    csr = _parse(raw)
    _check_signature(csr)
    public_key = csr_public_key(csr)
    key_type = key_type_of(public_key)
    _check_not_ca(_extensions(csr))
    return VettedCsr(csr=csr, public_key=public_key, key_type=key_type, sans=csr_sans(csr),
                     common_name=csr_common_name(csr))


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse and vet a CSR (every check of :func:`vet_csr`) and return it."""
    return vet_csr(data).csr


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        valid = csr.is_signature_valid
    except Exception:  # unsupported signature algorithms and the like
        valid = False
    if not valid:
        raise InvalidRequestError("the CSR signature does not verify", code="csr_bad_signature")


def csr_public_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    """Return the CSR's public key, refusing unsupported algorithms (``weak_key``)."""
    try:
        key = csr.public_key()
    except Exception:
        raise InvalidRequestError("the CSR public key is of an unsupported type", code="weak_key") from None
    key_type_of(key)
    return key  # type: ignore[return-value]


def csr_key_type(csr: x509.CertificateSigningRequest) -> KeyType:
    """Return the :class:`KeyType` of the CSR's public key."""
    return key_type_of(csr_public_key(csr))


def _extensions(csr: x509.CertificateSigningRequest) -> x509.Extensions:
    try:
        return csr.extensions
    except Exception:  # duplicate or undecodable extensions
        raise InvalidRequestError("the CSR contains malformed extensions", code="csr_malformed") from None


def _check_not_ca(extensions: x509.Extensions) -> None:
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if constraints.ca:
        raise InvalidRequestError(
            "the CSR asks for a CA certificate (basicConstraints cA=TRUE); CAs are created by operators only",
            code="ca_requested",
        )


def csr_sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    """Return the CSR's subjectAltNames, validated and normalised (duplicates dropped).

    Raises ``too_many_sans`` for more than :data:`MAX_SANS` entries and
    ``san_invalid`` / ``san_not_allowed`` for bad or unsupported entries.
    """
    try:
        ext = _extensions(csr).get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = list(ext.value)
    if len(names) > MAX_SANS:
        raise InvalidRequestError(
            f"the CSR has {len(names)} subject alternative names; at most {MAX_SANS} are allowed",
            code="too_many_sans",
        )
    return dedupe_sans(normalize_general_name(name) for name in names)


def csr_common_name(csr: x509.CertificateSigningRequest) -> str | None:
    """Return the CSR subject's commonName, or None when there is none."""
    try:
        return common_name_of(csr.subject)
    except InvalidRequestError:
        raise
    except Exception:
        raise InvalidRequestError("the CSR subject cannot be decoded", code="csr_malformed") from None


def csr_to_pem(csr: x509.CertificateSigningRequest) -> str:
    """Return the CSR as PEM text."""
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
