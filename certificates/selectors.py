"""Reads for CAs and certificates, scoped the way callers name things."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from certificates.crypto.serials import serial_to_hex
from certificates.errors import Conflict, NotFound
from certificates.models import Certificate, CertificateAuthority, is_ascii_number
from organizations.principal import Principal
from pki_project.db import PreparedSelect


def get_ca(reference: str | int, principal: Principal | None = None) -> CertificateAuthority:
    """A CA by slug or id, visible to `principal` (None: the operator at the console sees all).

    It comes with what issuance uses (its certificate and organization) in one query,
    compiled once per process (every API issuance starts here; see `_ca_lookup`).
    """
    reference = str(reference).strip()
    numeric = is_ascii_number(reference)
    scoped = principal is not None and not principal.is_global_admin
    values: tuple = (reference, int(reference)) if numeric else (reference,)
    if scoped:
        values += (principal.organization_id,)
    matches = _CA_LOOKUPS[numeric, scoped].fetch(*values)
    if not matches:
        raise NotFound(f"No CA '{reference}'.")
    # At most two rows match (a number can be one CA's id and another's slug): the lower id wins.
    return min(matches, key=lambda ca: ca.pk)


def _ca_lookup(numeric: bool, scoped: bool) -> PreparedSelect:
    """The CA lookup by slug, or by slug-or-id for a number (`by_reference`'s rule), optionally in one
    organization: compiling this select_related cost about 1 ms, more than signing."""

    def build(slug: str, *rest: int) -> QuerySet:
        queryset = CertificateAuthority.objects.select_related("certificate", "organization").order_by()
        if numeric:
            queryset = queryset.filter(Q(slug=slug) | Q(pk=rest[0]))
            rest = rest[1:]
        else:
            queryset = queryset.filter(slug=slug)
        if scoped:
            queryset = queryset.filter(organization_id=rest[0])
        return queryset[:2]

    argument_types = (str, *([int] if numeric else []), *([int] if scoped else []))
    return PreparedSelect(build, *argument_types)


_CA_LOOKUPS = {(numeric, scoped): _ca_lookup(numeric, scoped) for numeric in (False, True) for scoped in (False, True)}


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


def acme_origin(certificate: Certificate) -> dict[str, str] | None:
    """The ACME account and order a certificate was issued to, or None (read through the reverse relation,
    so this app needs no import of the ACME app that builds on it)."""
    row = (Certificate.objects.filter(pk=certificate.pk, acme_order__isnull=False)
           .values("acme_order__account__name", "acme_order__name").first())
    if row is None:
        return None
    return {"account": row["acme_order__account__name"], "order": row["acme_order__name"]}


def acme_summary(certificates: QuerySet[Certificate]) -> dict[str, int]:
    """ACME's share of `certificates`: the accounts that ordered them and how many, in one query."""
    return certificates.filter(acme_order__isnull=False).aggregate(
        certificates=Count("pk"), accounts=Count("acme_order__account", distinct=True))
