"""Small helpers shared by the certificate, CRL and OCSP builders."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from .errors import InvalidRequestError, PolicyError
from .keys import PublicKey
from .policy import ensure_utc, utc_now
from .serials import random_serial
from .signing import IssuerKey, as_signer

#: How far notBefore is backdated to absorb clock skew (see builders module docs).
BACKDATE = timedelta(minutes=1)


def extension(value: x509.ExtensionType, critical: bool) -> x509.Extension[x509.ExtensionType]:
    """Wrap an extension value with its OID and criticality."""
    return x509.Extension(value.oid, critical, value)


def authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI keyIdentifier copied from the issuer's SKI (RFC 5280 4.2.1.1 and 5.2.1).

    Falls back to the RFC 5280 4.2.1.2 method 1 hash of the issuer's key when
    the issuer has no SKI.
    """
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def distribution_point(url: str) -> x509.DistributionPoint:
    """A DistributionPoint with a single URI fullName (RFC 5280 4.2.1.13)."""
    return x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None, crl_issuer=None
    )


def require_key_matches(cert: x509.Certificate, key: IssuerKey) -> None:
    """Raise PolicyError (``issuer_key_mismatch``) unless ``key`` belongs to ``cert``."""
    require_public_key_matches(cert.public_key(), key)  # type: ignore[arg-type]


def require_public_key_matches(public_key: PublicKey, key: IssuerKey) -> None:
    """:func:`require_key_matches` for a certificate's public key already in hand."""
    if public_key != key.public_key():
        raise PolicyError("the issuer key does not match the issuer certificate", code="issuer_key_mismatch")


def checked_serial(serial: int | None) -> int:
    """A fresh random serial, or ``serial`` if it is positive and fits in 20 octets."""
    if serial is None:
        return random_serial()
    if isinstance(serial, bool) or not isinstance(serial, int) or serial <= 0 or serial.bit_length() > 159:
        raise InvalidRequestError("serial must be positive and fit in 20 octets", code="serial_invalid")
    return serial


def start_time(now: datetime | None) -> datetime:
    """notBefore for a certificate issued at ``now`` (default: the current second)."""
    return (ensure_utc(now, "now") if now is not None else utc_now()) - BACKDATE


def sign_certificate(
    *,
    issuer_name: x509.Name,
    subject: x509.Name,
    public_key: PublicKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: list[x509.Extension[x509.ExtensionType]],
    issuer_key: IssuerKey,
) -> x509.Certificate:
    """Assemble the TBSCertificate in one builder call and sign it with the issuer's hash."""
    builder = x509.CertificateBuilder(
        issuer_name=issuer_name,
        subject_name=subject,
        public_key=public_key,
        serial_number=serial,
        not_valid_before=not_before,
        not_valid_after=not_after,
        extensions=extensions,
    )
    return as_signer(issuer_key).sign_certificate(builder)
