"""Certificate requests in the admin: read-only (the approvals page and the API decide, through the service)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from approvals.models import IssuanceApproval
from approvals.services import visible_approvals
from certificates import staff
from pki_project.actor import Actor


@admin.register(IssuanceApproval)
class IssuanceApprovalAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "ca", "profile", "common_name", "requested_by", "requested_at", "expires_at",
                    "decided_by"]
    list_filter = ["status", "profile"]
    search_fields = ["common_name", "requested_by", "decided_by"]
    list_select_related = ["ca", "organization"]
    fields = ["status", "organization", "ca", "profile", "common_name", "names", "key_type", "days", "hours",
              "csr", "requested_by", "requested_at", "expires_at", "decided_by", "decided_at", "reason",
              "certificate", "decide"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return visible_approvals(Actor.from_request(request))

    @admin.display(description="decide")
    def decide(self, obj: IssuanceApproval) -> str:
        return format_html('<a href="/approvals#request-{}">approve or reject on the approvals page</a>', obj.pk)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return staff.can_operate(staff.principal_of(request))

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return staff.can_operate(staff.principal_of(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
