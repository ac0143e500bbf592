"""Reads for CAs and certificates, scoped the way callers name things."""

from __future__ import annotations

from certificates.errors import NotFound
from certificates.models import CertificateAuthority
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
