"""Filters of `GET /api/v1/organizations/` (django-filter), in the style of `certificates.filters`.

Organizations are few (one per tenant), so `search` is a plain case-insensitive substring
match on the name and the slug; the caller's scope (their own organization, or all for a
global admin) is applied before any filter.
"""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from organizations.models import Organization

MAX_SEARCH_LENGTH = 200


class OrganizationFilter(django_filters.FilterSet):
    slug = django_filters.CharFilter(max_length=64, help_text="Exactly this slug.")
    search = django_filters.CharFilter(method="filter_search", max_length=MAX_SEARCH_LENGTH,
                                       help_text="Part of the name or the slug (case-insensitive).")
    ordering = django_filters.OrderingFilter(
        fields=("name", "slug", "created_at", "id"),
        help_text="Sort by name, slug, created_at or id; prefix - to reverse. Default: slug.",
    )

    class Meta:
        model = Organization
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(slug__icontains=value))
