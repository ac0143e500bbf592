"""ACME Renewal Information (RFC 9773): when a client should renew, and which order replaces what.

A certificate is named by its `certID` (RFC 9773 4.1): the base64url (no padding) of its
Authority Key Identifier's keyIdentifier, a dot, and the base64url of its serial number's DER
content octets. The suggested window is the second half of the last third of the lifetime
(sooner than clients' own "a third left" habit would pick, never two at once for a fleet
issued together, as the window is wide); a revoked certificate gets a window in the past, which
tells a conforming client to renew at once (RFC 9773 4.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from django.utils import timezone

from acme_server.models import Account, Order, OrderStatus
from acme_server.services.context import iso_time
from acme_server.services.jose import b64url_decode, b64url_encode
from acme_server.services.problems import AcmeProblem
from certificates.crypto.serials import serial_to_hex
from certificates.keystore import ca_certificate
from certificates.models import Certificate, CertificateAuthority

RETRY_AFTER_SECONDS = 6 * 3600  # RFC 9773 4.3: clients poll again after this
_PART = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class CertId:
    key_identifier: bytes
    serial: int


def cert_id_of(certificate: x509.Certificate) -> str:
    """The certID of `certificate` (RFC 9773 4.1)."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = certificate.serial_number
    serial_der = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER INTEGER: a leading 0 keeps it positive
    return f"{b64url_encode(aki)}.{b64url_encode(serial_der)}"


def parse_cert_id(text: object) -> CertId:
    """Two unpadded base64url parts; anything else is malformed (RFC 9773 4.1)."""
    parts = text.split(".") if isinstance(text, str) and len(text) <= 200 else []
    if len(parts) != 2 or not all(_PART.fullmatch(part) for part in parts):
        raise AcmeProblem("malformed", "A certID is base64url(keyIdentifier).base64url(serial), without padding.")
    key_identifier, serial = (b64url_decode(part, "certID") for part in parts)
    if not key_identifier or not serial or serial[0] & 0x80:
        raise AcmeProblem("malformed", "The certID names no key identifier or a negative serial.")
    return CertId(key_identifier, int.from_bytes(serial, "big"))


def _ca_key_identifier(ca: CertificateAuthority) -> bytes:
    return ca_certificate(ca).extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.key_identifier


def certificate_named(ca: CertificateAuthority, cert_id: CertId) -> Certificate:
    """The certificate this directory's CA issued with that serial; 404 otherwise (another CA's included)."""
    if cert_id.key_identifier != _ca_key_identifier(ca):
        raise AcmeProblem("malformed", "This CA did not issue that certificate.", status=404)
    found = Certificate.objects.filter(issuer=ca, serial=serial_to_hex(cert_id.serial)).first()
    if found is None:
        raise AcmeProblem("malformed", "This CA did not issue that certificate.", status=404)
    return found


def suggested_window(certificate: Certificate, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    if certificate.revoked_at is not None:
        return now - timedelta(hours=2), now - timedelta(hours=1)
    lifetime = certificate.not_after - certificate.not_before
    return certificate.not_after - lifetime / 3, certificate.not_after - lifetime / 6


def renewal_info_document(ca: CertificateAuthority, cert_id_text: str) -> dict:
    """RFC 9773 4.2: the renewalInfo object of one certificate."""
    start, end = suggested_window(certificate_named(ca, parse_cert_id(cert_id_text)))
    return {"suggestedWindow": {"start": iso_time(start), "end": iso_time(end)}}


def replaced_certificate(ca: CertificateAuthority, account: Account, replaces: object,
                         identifiers: list[dict]) -> Certificate:
    """RFC 9773 5: the certificate a new order replaces: this account's, sharing a name, not yet replaced."""
    certificate = certificate_named(ca, parse_cert_id(replaces))
    previous = Order.objects.filter(certificate=certificate).select_related("account").first()
    if previous is None or previous.account_id != account.pk:
        raise AcmeProblem("unauthorized", "The certificate named in replaces was not ordered by this account.")
    ordered = {(identifier["type"], identifier["value"]) for identifier in identifiers}
    if not ordered & {(identifier["type"], identifier["value"]) for identifier in previous.identifiers}:
        raise AcmeProblem("malformed", "The new order shares no identifier with the certificate it replaces.")
    if Order.objects.filter(replaces=certificate).exclude(status=OrderStatus.INVALID).exists():
        raise AcmeProblem("alreadyReplaced", "Another order already replaces that certificate.")
    return certificate
