"""The audit trail in the Django admin: a read-only list for everyone, whatever their permissions.

No one may add, change or delete an event here (not even a superuser), and the
bulk "delete selected" action is gone. What a staff member sees is scoped like
the API (`audit.selectors.events_visible_to`).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent, AuditEventQuerySet
from audit.selectors import events_visible_to


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "created_at", "action", "outcome", "actor", "actor_role", "organization_slug", "target",
                    "source_ip"]
    list_display_links = ["seq"]
    list_filter = ["action", "outcome", "organization_slug", "created_at", "actor_username", "actor_role"]
    search_fields = ["actor_username", "actor_label", "target_type", "target_id", "target_serial"]
    ordering = ["-seq"]
    actions = None
    list_per_page = 50
    show_full_result_count = False  # no second COUNT(*) over a table that only grows
    fields = ["seq", "created_at", "action", "outcome", "actor_user_id", "actor_username", "actor_api_key_id",
              "actor_role", "actor_label", "organization_id", "organization_slug", "target_type", "target_id",
              "target_serial", "source_ip", "user_agent", "details", "version", "prev_hash", "hash"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> AuditEventQuerySet:
        principal = getattr(request, "principal", None)
        if principal is None:  # only reachable without the PKI session middleware (e.g. a bare superuser)
            return super().get_queryset(request) if request.user.is_superuser else AuditEvent.objects.none()
        return events_visible_to(principal)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    @admin.display(description="actor", ordering="actor_username")
    def actor(self, event: AuditEvent) -> str:
        return event.actor_display

    @admin.display(description="target")
    def target(self, event: AuditEvent) -> str:
        parts = [event.target_type, event.target_id, event.target_serial and f"serial {event.target_serial}"]
        return " ".join(part for part in parts if part)
