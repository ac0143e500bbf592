"""Turning a signed `x509.Certificate` into its database row (one place, every kind)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certificates.crypto.fingerprints import certificate_fingerprint_sha256
from certificates.crypto.keys import key_type_of
from certificates.crypto.names import common_name_of, format_san
from certificates.crypto.serials import serial_to_hex
from certificates.models import Certificate, CertificateAuthority, CertificateKind, KeySource
from organizations.models import Organization


def subject_alternative_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [format_san(name) for name in extension.value]


def create_certificate_row(
    certificate: x509.Certificate,
    *,
    organization: Organization,
    issuer: CertificateAuthority | None,
    kind: CertificateKind,
    key_source: KeySource,
    created_by: str,
    profile: str = "",
    predecessor: Certificate | None = None,
    key_path: str = "",
    pkcs12_path: str = "",
    pkcs12_password_path: str = "",
) -> Certificate:
    return Certificate.objects.create(
        organization=organization,
        issuer=issuer,
        kind=kind,
        profile=profile,
        serial=serial_to_hex(certificate.serial_number),
        common_name=common_name_of(certificate.subject) or "",
        subject=certificate.subject.rfc4514_string(),
        sans=subject_alternative_names(certificate),
        key_type=key_type_of(certificate.public_key()).value,
        key_source=key_source,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint_sha256=certificate_fingerprint_sha256(certificate),
        der=certificate.public_bytes(Encoding.DER),
        predecessor=predecessor,
        created_by=created_by[:150],
        key_path=key_path,
        pkcs12_path=pkcs12_path,
        pkcs12_password_path=pkcs12_password_path,
    )


def load_x509(row: Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(row.der))
