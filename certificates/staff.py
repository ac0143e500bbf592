"""Who may see and do what on the staff pages and in the admin (the server's side of role-shaped pages).

rbac.json decides which routes a role may call at all; these helpers scope every
queryset to the caller's organization (another organization's object answers 404)
and tell templates which controls to show. What may be done to which object is
`certificates.services.permissions`, which every service checks whichever channel calls it.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest

from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from organizations.models import Organization
from organizations.principal import Principal
from organizations.roles import Role
from pki_project.api import scope_to_principal

OPERATOR_ROLES = frozenset({Role.ADMIN, Role.MANAGER})


def principal_of(request: HttpRequest) -> Principal | None:
    return getattr(request, "principal", None)


def can_operate(principal: Principal | None) -> bool:
    """Issue, renew, revoke, download keys' passwords, sign CRLs: admins and managers."""
    return principal is not None and principal.role in OPERATOR_ROLES


def is_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.role is Role.ADMIN


def can_create_organizations(principal: Principal | None) -> bool:
    return principal is not None and principal.is_global_admin


def visible_certificates(principal: Principal | None) -> QuerySet[Certificate]:
    return scope_to_principal(Certificate.objects.all(), principal, "organization")


def visible_cas(principal: Principal | None) -> QuerySet[CertificateAuthority]:
    queryset = CertificateAuthority.objects.select_related("certificate", "organization", "parent")
    return scope_to_principal(queryset, principal, "organization")


def visible_crls(principal: Principal | None) -> QuerySet[CertificateRevocationList]:
    return scope_to_principal(CertificateRevocationList.objects.select_related("ca"), principal, "ca__organization")


def visible_organizations(principal: Principal | None) -> QuerySet[Organization]:
    return scope_to_principal(Organization.objects.all(), principal, "pk")


def issuing_cas(principal: Principal | None) -> QuerySet[CertificateAuthority]:
    """Intermediates that may sign now (roots sign only CAs and CRLs)."""
    return visible_cas(principal).intermediates().usable().order_by("organization__slug", "name")
