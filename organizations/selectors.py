"""Reads of the identity models, scoped to who asks (the API and the staff pages share them)."""

from __future__ import annotations

from django.db.models import QuerySet

from certificates.errors import InvalidInput, NotFound
from organizations.models import ApiKey, Membership, Organization
from organizations.principal import Principal
from organizations.roles import Role
from pki_project.api import scope_to_principal


def visible_api_keys(principal: Principal | None) -> QuerySet[ApiKey]:
    """Own keys; an admin also sees the keys of their organization's users (a global admin: all)."""
    keys = ApiKey.objects.select_related("user", "user__membership", "user__membership__organization") \
        .prefetch_related("allowed_cas")
    if principal is None:  # schema generation, or a request that escaped RBAC
        return keys.none()
    if principal.role == Role.ADMIN:
        return scope_to_principal(keys, principal, "user__membership__organization")
    return keys.filter(user_id=principal.user_id)


def key_holders(principal: Principal | None) -> QuerySet[Membership]:
    """Whom an admin may give a key on the staff pages: active members they see (a global admin: everyone)."""
    if principal is None or principal.role != Role.ADMIN:
        return Membership.objects.none()
    members = Membership.objects.select_related("user", "organization").filter(user__is_active=True)
    return scope_to_principal(members, principal, "organization").order_by("organization__slug", "user__username")


def organization_for_caller(slug: str | None, principal: Principal | None) -> Organization:
    """The organization a create request names by slug (default: the caller's own); another one is 404."""
    if slug is None:
        if principal is None or principal.organization_id is None:
            raise InvalidInput("Name the organization (a global admin has none of their own).",
                               code="organization_required")
        return Organization.objects.get(pk=principal.organization_id)
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None or principal is None or not principal.can_see_organization(organization.pk):
        raise NotFound("No such organization.", code="unknown_organization")
    return organization
