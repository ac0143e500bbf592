"""How the API shows a request waiting for approval, and the body of a rejection."""

from __future__ import annotations

from rest_framework import serializers

from approvals.models import MAX_REASON_LENGTH, ApprovalStatus, IssuanceApproval
from pki_project.api import StrictCharField


class IssuanceApprovalSerializer(serializers.ModelSerializer):
    """A request: what it asks for (never a key: a server key is generated at approval), who asked, its fate."""

    ca = serializers.IntegerField(source="ca_id", read_only=True)
    ca_slug = serializers.CharField(source="ca.slug", read_only=True)
    organization = serializers.CharField(source="organization.slug", read_only=True)
    status = serializers.ChoiceField(choices=ApprovalStatus.choices, read_only=True)
    names = serializers.ListField(child=serializers.CharField(), read_only=True)
    key_source = serializers.CharField(read_only=True)
    certificate = serializers.IntegerField(source="certificate_id", read_only=True, allow_null=True)

    class Meta:
        model = IssuanceApproval
        fields = ["id", "status", "organization", "ca", "ca_slug", "profile", "common_name", "names", "key_source",
                  "key_type", "days", "hours", "requested_by", "requested_at", "expires_at", "decided_by",
                  "decided_at", "reason", "certificate"]
        read_only_fields = fields


class RejectSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=MAX_REASON_LENGTH, help_text="Why the request is refused (required).")
