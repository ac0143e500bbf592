"""Filters of `GET /api/v1/certificates/` and `GET /api/v1/cas/` (django-filter).

`search` uses the indexed columns where it can: the serial (`cert_serial` index) and
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


def search_query(value: str) -> Q:
    """Serial or fingerprint (exact or prefix), common name prefix, SAN substring (see the module's note)."""
    value = value.strip()[:MAX_SEARCH_LENGTH]
    query = Q(cn_lower__startswith=value.lower())
    hex_text = _normalized_hex(value)
    if hex_text:
        query |= Q(serial__startswith=hex_text) | Q(fingerprint_sha256__startswith=hex_text)
        if len(hex_text) % 2:  # serials are stored with an even number of digits
            query |= Q(serial__startswith="0" + hex_text)
    if len(value) >= 3 and _SAN_LIKE.search(value):
        query |= Q(sans_text__icontains=value)
    return query


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
    profile = django_filters.CharFilter(max_length=20)
    ordering = django_filters.OrderingFilter(
        fields=("created_at", "not_before", "not_after", "common_name", "serial", "id"),
        help_text="Sort by created_at, not_before, not_after, common_name, serial or id; prefix - to reverse.",
    )

    class Meta:
        model = Certificate
        fields: list[str] = []

    def filter_status(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        return queryset.with_status(value) if value else queryset

    def filter_ca(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(id_or_slug("issuer_id", "issuer__slug", value)) if value else queryset

    def filter_organization(self, queryset: CertificateQuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(id_or_slug("organization_id", "organization__slug", value)) if value else queryset

    def filter_expiring_within(self, queryset: CertificateQuerySet, name: str, value: int | None) -> QuerySet:
        return queryset if value is None else queryset.expiring_within(int(value))

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
