"""Turning a signed `x509.Certificate` into its database row (one place, every kind)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certificates.crypto.fingerprints import der_fingerprint_sha256
from certificates.crypto.keys import PublicKey, key_type_of
from certificates.crypto.names import common_name_of, dedupe_sans, format_san
from certificates.crypto.serials import serial_to_hex
from certificates.models import Certificate, CertificateAuthority, CertificateKind, KeySource
from organizations.models import Organization
from pki_project.db import insert_new, new_row


def subject_alternative_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [format_san(name) for name in extension.value]


@dataclass(frozen=True)
class SignedFrom:
    """What the builder was given for a certificate it just signed: the subject, the SANs and the key.

    With it the row takes these values from the objects in hand instead of parsing them
    back out of the certificate (its extensions, name and key: about 60 us on the issuance
    hot path). The builder copies them unchanged, SANs deduplicated in order, and
    tests compare both ways of filling the row.
    """

    subject: x509.Name
    sans: Sequence[x509.GeneralName]
    public_key: PublicKey


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
    signed_from: SignedFrom | None = None,
) -> Certificate:
    der = certificate.public_bytes(Encoding.DER)
    if signed_from is None:
        subject, public_key = certificate.subject, certificate.public_key()
        sans = subject_alternative_names(certificate)
    else:
        subject, public_key = signed_from.subject, signed_from.public_key
        sans = [format_san(name) for name in dedupe_sans(signed_from.sans)]
    row = new_row(
        Certificate,
        organization=organization,
        issuer=issuer,
        kind=kind,
        profile=profile,
        serial=serial_to_hex(certificate.serial_number),
        common_name=common_name_of(subject) or "",
        subject=subject.rfc4514_string(),
        sans=sans,
        key_type=key_type_of(public_key).value,
        key_source=key_source,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint_sha256=der_fingerprint_sha256(der),
        der=der,
        predecessor=predecessor,
        created_by=created_by[:150],
        key_path=key_path,
        pkcs12_path=pkcs12_path,
        pkcs12_password_path=pkcs12_password_path,
    )
    return insert_new(row)  # issuance's hot path: the statement is compiled once


def load_x509(row: Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(row.der))
