"""DRF building blocks every app's API uses: authentication, permissions, pagination, tenancy.

Authentication happened already in `PrincipalAuthenticationMiddleware` and rbac.json
was enforced by `RbacMiddleware`; DRF only picks the principal up. Tenancy is each
view's job: scope querysets with `scope_to_principal` (or mix in
`OrganizationScopedQuerysetMixin`) so another organization's object answers 404,
in lists, details, downloads and actions alike.

    class CertificateViewSet(OrganizationScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
        queryset = Certificate.objects.all()
        organization_field = "ca__organization"   # the lookup path to the organization
"""

from __future__ import annotations

import re

from django.db.models import QuerySet
from django.http import Http404
from rest_framework import permissions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from organizations.principal import Principal
from organizations.roles import Role


class PrincipalAuthentication(BaseAuthentication):
    """`request.user` / `request.auth` from the principal the middleware set (`request.auth` is the Principal)."""

    def authenticate(self, request):
        django_request = request._request
        principal = getattr(django_request, "principal", None)
        if principal is None:
            return None
        return django_request.user, principal

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="pki"'  # makes DRF answer 401 (not 403) to anonymous callers


def principal_of(request) -> Principal | None:
    return getattr(request, "principal", None)


class HasPrincipal(permissions.BasePermission):
    """The default: someone is signed in. Which role may do what is rbac.json's job."""

    def has_permission(self, request, view) -> bool:
        return principal_of(request) is not None


class IsGlobalAdmin(permissions.BasePermission):
    message = "Only a global admin may do this."

    def has_permission(self, request, view) -> bool:
        principal = principal_of(request)
        return principal is not None and principal.is_global_admin


def has_role(principal: Principal | None, *roles: Role) -> bool:
    return principal is not None and principal.role in roles


def scope_to_principal(queryset: QuerySet, principal: Principal | None, org_field: str = "organization") -> QuerySet:
    """Only what `principal` may see: everything for a global admin, their organization otherwise.

    `org_field` is the lookup from the queryset's model to the organization: e.g.
    "organization", "ca__organization", or "pk" for the Organization model itself.
    """
    if principal is None:
        return queryset.none()
    if principal.is_global_admin:
        return queryset
    if principal.organization_id is None:
        return queryset.none()
    return queryset.filter(**{org_field: principal.organization_id})


def get_scoped_object_or_404(queryset: QuerySet, principal: Principal | None, org_field: str = "organization",
                             **lookup):
    """One object the principal may see, or 404 (never 403: another organization's object does not exist)."""
    obj = scope_to_principal(queryset, principal, org_field).filter(**lookup).first()
    if obj is None:
        raise Http404
    return obj


class OrganizationScopedQuerysetMixin:
    """For DRF generic views: `get_queryset()` is scoped to the caller's organization."""

    organization_field = "organization"

    def get_queryset(self):
        return scope_to_principal(super().get_queryset(), principal_of(self.request), self.organization_field)


class StableOrdering:
    """Lists keep a total order whatever `ordering=` says (an empty value would drop it: unstable pages)."""

    tie_breaker: tuple[str, ...] = ("-id",)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        order = list(queryset.query.order_by) or list(queryset.model._meta.ordering)
        return queryset.order_by(*order, *(field for field in self.tie_breaker if field not in order))


class BoundedPageNumberPagination(PageNumberPagination):
    """`?page=N&page_size=M`: M defaults to 50 and is capped at 200.

    A `page_size` that is not a whole number is a 400, not silently ignored; below 1
    it means the default and above 200 it is capped (as DRF does); a page past the end
    is DRF's 404.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        if len(values) > 1 or not re.fullmatch(r"-?[0-9]{1,9}", values[0]):
            raise ValidationError({self.page_size_query_param: ["A page size is a whole number."]})
        size = int(values[0])
        return self.page_size if size < 1 else min(size, self.max_page_size)


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and lists instead of turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
