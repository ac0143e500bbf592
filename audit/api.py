"""GET /api/v1/audit-events/ and /api/v1/audit-events/{id}/: the trail, read-only, newest first;
POST /api/v1/audit-events/verify/: `verify_audit_log` for global admins.

Who sees what is `audit.selectors.events_visible_to`; rbac.json already keeps
read-only users out. Pages are cursor-based on `seq`: an append-only log grows
while someone pages through it, and a cursor neither skips nor repeats events
when it does (nor counts millions of rows for every page).

Verifying walks the whole installation's chain, so it is for global admins only; like
the command it reads and records nothing (an event per check would only lengthen the
chain it checks; who called it is in the server's access log).
"""

from __future__ import annotations

from datetime import UTC

import django_filters
from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from audit.actions import AuditAction, Outcome
from audit.models import AuditEvent, AuditEventQuerySet
from audit.selectors import events_visible_to
from audit.verification import (
    CHECKPOINT_FORMATS,
    UNSIGNED_CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointError,
    database_report,
)
from pki_project.api import HasPrincipal, IsGlobalAdmin

MAX_SEQ = 2**63 - 1


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


# --- POST /api/v1/audit-events/verify/ ---------------------------------------------------------------


class CheckpointSerializer(serializers.Serializer):
    """A checkpoint as `verify_audit_log --checkpoint-out` writes it (and `new_checkpoint` answers)."""

    head_seq = serializers.IntegerField(min_value=0, max_value=MAX_SEQ)
    head_hash = serializers.RegexField(r"^[0-9a-f]{64}$", max_length=64, help_text="SHA-256, lower-case hex.")
    count = serializers.IntegerField(min_value=0, max_value=MAX_SEQ)
    created_at = serializers.CharField(max_length=64)
    format = serializers.ChoiceField(choices=list(CHECKPOINT_FORMATS), required=False,
                                     default=UNSIGNED_CHECKPOINT_FORMAT,
                                     help_text="2: signed (what this release writes); 1: unsigned, from earlier ones.")
    public_key = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                       help_text="Format 2: the Ed25519 public key that signed it (base64).")
    signature = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                      help_text="Format 2: the Ed25519 signature (base64).")


class AuditVerifySerializer(serializers.Serializer):
    checkpoint = CheckpointSerializer(
        required=False, allow_null=True,
        help_text="An earlier checkpoint: also prove the chain still reaches its head and ends in its hash there "
                  "(`verify_audit_log --checkpoint FILE`).",
    )


class BrokenLinkSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["missing", "edited", "relinked", "moved", "forged", "checkpoint_mismatch",
                                            "truncated", "checkpoint_signature"])
    seq = serializers.IntegerField()
    event_id = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class AuditVerifyResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="The chain is intact (and matches the checkpoint, when one was given).")
    count = serializers.IntegerField(help_text="Events verified (before the break, when broken).")
    head_seq = serializers.IntegerField()
    head_hash = serializers.CharField()
    broken = BrokenLinkSerializer(allow_null=True, help_text="The first broken link; null when intact.")
    checkpoint = CheckpointSerializer(allow_null=True, help_text="The checkpoint verified against, if any.")
    triggers_installed = serializers.BooleanField(
        allow_null=True, help_text="The append-only triggers on the audit table are in place.")
    new_checkpoint = CheckpointSerializer(
        allow_null=True, help_text="When intact: a checkpoint of the head now, to keep outside "
                                   "(`--checkpoint-out`).")


class AuditChainVerify(generics.GenericAPIView):
    """The whole hash chain, walked now: 200 with `ok: false` and the first broken link when it is broken."""

    serializer_class = AuditVerifySerializer
    permission_classes = [HasPrincipal, IsGlobalAdmin]
    filter_backends: list = []
    pagination_class = None

    @extend_schema(summary="Verify the audit trail's hash chain (global admins; verify_audit_log).",
                   request=AuditVerifySerializer, responses={200: AuditVerifyResultSerializer})
    def post(self, request, *args, **kwargs):
        data = AuditVerifySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        checkpoint = data.validated_data.get("checkpoint")
        try:
            checkpoint = Checkpoint.from_mapping(checkpoint) if checkpoint else None
        except CheckpointError as error:
            raise ValidationError({"checkpoint": [str(error)]}) from None
        return Response(AuditVerifyResultSerializer(database_report(checkpoint)).data)
