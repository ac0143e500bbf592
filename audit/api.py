"""GET /api/v1/audit-events/ and /api/v1/audit-events/{id}/: the trail, read-only, newest first.

Who sees what is `audit.selectors.events_visible_to`; rbac.json already keeps
read-only users out. Pages are cursor-based on `seq`: an append-only log grows
while someone pages through it, and a cursor neither skips nor repeats events
when it does (nor counts millions of rows for every page).
"""

from __future__ import annotations

from datetime import UTC

import django_filters
from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

from audit.actions import AuditAction, Outcome
from audit.models import AuditEvent, AuditEventQuerySet
from audit.selectors import events_visible_to


class UtcDateTimeFilter(django_filters.DateTimeFilter):
    """Compares in UTC: Python accepts offsets up to +-23:59 that PostgreSQL refuses (a 500 before)."""

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise ValidationError({self.field_name: ["The date-time is out of range."]}) from None
        return super().filter(qs, value)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "seq", "created_at", "action", "outcome", "actor_user_id", "actor_username",
                  "actor_api_key_id", "actor_role", "actor_label", "organization_id", "organization_slug",
                  "target_type", "target_id", "target_serial", "source_ip", "user_agent", "details", "version",
                  "prev_hash", "hash"]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=[(action.value, action.value) for action in AuditAction])
    outcome = django_filters.ChoiceFilter(choices=[(outcome.value, outcome.value) for outcome in Outcome])
    organization = django_filters.CharFilter(method="filter_organization", help_text="Organization id or slug.")
    actor = django_filters.CharFilter(field_name="actor_username", help_text="The acting user's username.")
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte",
                              help_text="At or after this ISO-8601 date or date-time (UTC).")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt",
                              help_text="Before this ISO-8601 date or date-time (UTC).")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    target_serial = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = AuditEvent
        fields = ["action", "outcome", "organization", "actor", "since", "until", "target_type", "target_id",
                  "target_serial"]

    def filter_organization(self, queryset: AuditEventQuerySet, name: str, value: str) -> AuditEventQuerySet:
        if value.isascii() and value.isdigit() and len(value) <= 18:  # "²".isdigit() is True; int("²") fails
            return queryset.filter(Q(organization_id=int(value)) | Q(organization_slug=value))
        return queryset.filter(organization_slug=value)


class AuditEventPagination(CursorPagination):
    ordering = "-seq"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AuditEventSerializer
    pagination_class = AuditEventPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilter
    lookup_field = "id"
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> AuditEventQuerySet:
        return events_visible_to(getattr(self.request, "principal", None))
