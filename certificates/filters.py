"""Filters of `GET /api/v1/certificates/` and `GET /api/v1/cas/` (django-filter).

`search` uses the indexed columns where it can: the serial (the unique (serial, issuer) index) and
the SHA-256 fingerprint (unique index) by exact value or prefix, the common name by
prefix on the `Lower(common_name)` expression index (`cert_cn_lower`). SANs live in a
JSON list; a portable "contains" over them means a scan of the JSON text, so it is only
tried for search terms that look like a host name, an address or an e-mail address
and only when they are at least 3 characters long. On a very large table prefer the
other terms (or a dedicated SAN table; see the report in the commit that added this).
"""

from __future__ import annotations

import re

import django_filters
from django import forms
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast, Lower
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from certificates.models import Certificate, CertificateAuthority, CertificateQuerySet, CertificateStatus
from organizations.models import Organization

MAX_DB_INTEGER = 2**63 - 1
MAX_SEARCH_LENGTH = 200
_HEX = re.compile(r"^[0-9a-f]+$")
_SAN_LIKE = re.compile(r"[.:@]")


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


def id_or_slug(field: str, slug_field: str, value: str) -> Q:
    """`value` as an id (when it fits a database integer) or as a slug."""
    value = value.strip()
    query = Q(**{slug_field: value})
    if value.isascii() and value.isdigit() and int(value) <= MAX_DB_INTEGER:  # "³".isdigit() is True
        query |= Q(**{field: int(value)})
    return query


def _normalized_hex(value: str) -> str | None:
    text = value.strip().lower().replace(":", "").replace(" ", "")
    return text if text and _HEX.match(text) else None


def prefix_range(field: str, prefix: str) -> Q:
    """`field` starts with `prefix`, as `prefix <= field < next(prefix)`.

    A range is served by an ordinary btree index on both SQLite and PostgreSQL, where
    `LIKE 'x%'` is not (SQLite's LIKE is case-insensitive; PostgreSQL needs a
    pattern-ops index outside the C collation).
    """
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return Q(**{f"{field}__gte": prefix, f"{field}__lt": upper})


def search_query(value: str) -> Q:
    """Serial or fingerprint (exact or prefix), common name prefix, SAN substring (see the module's note)."""
    value = value.strip()[:MAX_SEARCH_LENGTH]
    query = prefix_range("cn_lower", value.lower())
    hex_text = _normalized_hex(value)
    if hex_text:
        query |= prefix_range("serial", hex_text) | prefix_range("fingerprint_sha256", hex_text)
        if len(hex_text) % 2:  # serials are stored with an even number of digits
            query |= prefix_range("serial", "0" + hex_text)
    if len(value) >= 3 and _SAN_LIKE.search(value):
        query |= Q(sans_text__icontains=value)
    return query


# Status views list by expiry, which the `cert_status_window` index delivers already in order,
# so a page of a large inventory stops after its rows whatever the planner's statistics say.
# An explicit `ordering=` (applied after these filters) still wins.
# The whole index key is the order, so rows sharing an expiry need no sort either.
STATUS_ORDERING = {
    CertificateStatus.VALID: ("-not_after", "-not_before", "-id"),
    CertificateStatus.EXPIRED: ("-not_after", "-not_before", "-id"),
    CertificateStatus.NOT_YET_VALID: ("not_before", "id"),
}


def _ids(queryset: QuerySet) -> list[int]:
    """Resolve a reference to ids first: `issuer_id IN (…)` uses the index, a join on `slug OR id` does not."""
    return list(queryset.values_list("id", flat=True)[:2])


class CertificateFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CertificateStatus.choices, method="filter_status",
                                         help_text="Derived from the dates and revocation, as of now.")
    ca = django_filters.CharFilter(method="filter_ca", max_length=64, help_text="The issuing CA's id or slug.")
    organization = django_filters.CharFilter(method="filter_organization", max_length=64,
                                             help_text="Organization id or slug.")
    expiring_within = IntegerFilter(method="filter_expiring_within", min_value=0, max_value=36500,
                                    help_text="Valid now and expiring within this many days.")
    search = django_filters.CharFilter(method="filter_search", max_length=MAX_SEARCH_LENGTH,
                                       help_text="Serial or SHA-256 fingerprint (hex, exact or prefix), common "
                                                 "name prefix (case-insensitive), or part of a SAN.")
    kind = django_filters.ChoiceFilter(choices=[("root_ca", "root_ca"), ("intermediate_ca", "intermediate_ca"),
                                                ("end_entity", "end_entity"), ("ocsp_responder", "ocsp_responder")])
    profile = django_filters.CharFilter(max_length=64)
    ordering = django_filters.OrderingFilter(
        fields=("created_at", "not_before", "not_after", "common_name", "serial", "id"),
        help_text="Sort by created_at, not_before, not_after, common_name, serial or id; prefix - to reverse.",
    )

    class Meta:
        model = Certificate
        fields: list[str] = []

    def filter_status(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        if not value:
            return queryset
        return queryset.with_status(value).order_by(*STATUS_ORDERING.get(value, ("-id",)))

    def filter_ca(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(issuer_id__in=_ids(CertificateAuthority.objects.filter(id_or_slug("id", "slug", value))))

    def filter_organization(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(organization_id__in=_ids(Organization.objects.filter(id_or_slug("id", "slug", value))))

    def filter_expiring_within(self, queryset: CertificateQuerySet, name: str, value: int | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.expiring_within(int(value)).order_by("not_after", "not_before", "id")

    def filter_search(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        if not value.strip():
            return queryset
        annotated = queryset.annotate(cn_lower=Lower("common_name"), sans_text=Cast("sans", TextField()))
        return annotated.filter(search_query(value))


class CertificateAuthorityFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=CertificateAuthority.Kind.choices)
    organization = django_filters.CharFilter(method="filter_organization", max_length=64,
                                             help_text="Organization id or slug.")
    parent = django_filters.CharFilter(method="filter_parent", max_length=64, help_text="The parent CA's id or slug.")
    status = django_filters.ChoiceFilter(choices=CertificateStatus.choices, method="filter_status")
    ordering = django_filters.OrderingFilter(fields=("name", "slug", "created_at", "id"))

    class Meta:
        model = CertificateAuthority
        fields: list[str] = []

    def filter_organization(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(id_or_slug("organization_id", "organization__slug", value)) if value else queryset

    def filter_parent(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(id_or_slug("parent_id", "parent__slug", value)) if value else queryset

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(certificate__in=Certificate.objects.with_status(value))
