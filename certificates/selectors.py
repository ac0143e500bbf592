"""Reads for CAs and certificates, scoped the way callers name things."""

from __future__ import annotations

from certificates.crypto.serials import serial_to_hex
from certificates.errors import Conflict, NotFound
from certificates.models import Certificate, CertificateAuthority, is_ascii_number
from organizations.principal import Principal


def get_ca(reference: str | int, principal: Principal | None = None) -> CertificateAuthority:
    """A CA by slug or id, visible to `principal` (None: the operator at the console sees all)."""
    queryset = CertificateAuthority.objects.select_related("certificate", "organization", "parent")
    if principal is not None and not principal.is_global_admin:
        queryset = queryset.filter(organization_id=principal.organization_id)
    ca = queryset.by_reference(str(reference)).first()
    if ca is None:
        raise NotFound(f"No CA '{reference}'.")
    return ca


def ca_chain(ca: CertificateAuthority) -> list[CertificateAuthority]:
    """`ca` and its ancestors, up to and including the root (at most a few rows)."""
    chain = [ca]
    while chain[-1].parent_id is not None:
        chain.append(CertificateAuthority.objects.select_related("certificate").get(pk=chain[-1].parent_id))
    return chain


def get_certificate(reference: str | int, ca: CertificateAuthority | None = None,
                    principal: Principal | None = None) -> Certificate:
    """A certificate by id or by hex serial (colons and case ignored); `ca` settles a serial shared by issuers."""
    reference = str(reference).strip()
    queryset = Certificate.objects.select_related("issuer", "organization")
    if principal is not None and not principal.is_global_admin:
        queryset = queryset.filter(organization_id=principal.organization_id)
    if ca is not None:
        queryset = queryset.filter(issuer=ca)
    serial = _canonical_serial(reference)
    matches = list(queryset.filter(serial=serial)[:2]) if serial else []
    if not matches and is_ascii_number(reference):
        matches = list(queryset.filter(pk=int(reference))[:1])
    if not matches:
        raise NotFound(f"No certificate '{reference}'.")
    if len(matches) > 1:
        raise Conflict(f"Serial {reference} is used by several CAs: name the CA too (--ca).", code="ambiguous")
    return matches[0]


def _canonical_serial(reference: str) -> str | None:
    """The stored spelling of a hex serial (lower case, even length), or None if it is not one."""
    text = reference.replace(":", "").lower()
    if not text or len(text) > 40 or any(c not in "0123456789abcdef" for c in text) or int(text, 16) == 0:
        return None
    return serial_to_hex(int(text, 16))
